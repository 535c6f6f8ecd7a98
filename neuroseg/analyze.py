"""Do the nanopillar grids steer axon growth? python -m neuroseg.analyze images=<raw tree>.

Per image: the pillar grid's angle from the original, the axons' directions from the mask.
Per group: length-weighted histograms and rose plots; between groups: Kolmogorov-Smirnov tests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from neuroseg import io
from neuroseg.analysis import plots
from neuroseg.analysis.grid import grid_angle_deg
from neuroseg.analysis.orientation import (
    alignment_index,
    axial_mean_deg,
    fold_relative_deg,
    measure_axons,
)
from neuroseg.analysis.sources import Source, find_sources
from neuroseg.analysis.stats import STATS_COLUMNS, describe_group, run_tests, summary_text
from neuroseg.data.labels import class_mask

IMAGE_COLUMNS = (
    "image", "group", "grid_angle", "grid_spacing", "grid_confidence", "reference_deg",
    "axon_length_px", "axon_mean_direction_deg", "axon_alignment", "n_segments",
    "n_short_segments", "duplicate_of", "note",
)  # fmt: skip
SEGMENT_COLUMNS = (
    "image", "group", "segment_id", "length_px", "direction_deg", "relative_deg", "row", "col",
)  # fmt: skip


@hydra.main(version_base="1.3", config_path="../conf", config_name="analyze")
def main(cfg: DictConfig) -> None:
    output = analyze(cfg)
    print((output / "summary.txt").read_text())
    print(f"tables and plots in {output}")


def read_pair(
    source: Source, axon_value: int, palette: Mapping[str, object]
) -> tuple[np.ndarray, np.ndarray]:
    """Original (H, W) and class mask (H, W) uint8; painted RGB labels go through the palette."""
    image = io.read_image(source.image)
    mask = io.read_image(source.mask)
    if mask.ndim == 3 and mask.dtype == np.uint8:
        mask = class_mask(mask, palette)  # a painted label copy (labels_axons/)
    if mask.ndim != 2 or int(mask.max(initial=0)) > max(axon_value, 2):
        raise ValueError(
            f"{source.mask}: not a class-index mask (shape {mask.shape}, max {mask.max()}); "
            "use prepare's masks_axons/, truth/, labels_axons/ or predict's <stem>_mask.png"
        )
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"{source.mask}: {mask.shape[0]}x{mask.shape[1]} but {source.image} is "
            f"{image.shape[0]}x{image.shape[1]}; masks must match their originals"
        )
    return image, mask


@dataclass(frozen=True)
class ImageResult:
    """One image's table rows and the arrays its group pools (angles in deg, lengths in px)."""

    row: dict[str, object]
    segment_rows: list[dict[str, object]]
    arrays: dict[str, np.ndarray]


def measure(source: Source, image: np.ndarray, mask: np.ndarray, cfg: DictConfig) -> ImageResult:
    """Grid from the original, axons from the mask, angles relative to the grid (or reference)."""
    grid = grid_angle_deg(image, **cfg.grid)
    axons = measure_axons(mask, **cfg.axons)
    reference = grid.angle_deg if grid.found else cfg.no_grid_reference_deg
    offsets = np.array([s.direction_deg for s in axons.segments]) - reference
    folded = fold_relative_deg(offsets, 0.0)
    alignment = alignment_index(axons.directions_deg, reference, axons.weights_px)
    note = []
    if not grid.found:
        note.append(f"no grid (confidence {grid.confidence:g}); angles vs {reference:g} deg axis")
    if axons.length_px == 0:
        note.append("no axons in mask")
    elif not axons.segments:
        note.append(f"no axon segment >= {cfg.axons.min_segment_px:g} px")
    row = {
        "image": source.name, "group": source.group, "grid_angle": blank(grid.angle_deg),
        "grid_spacing": blank(grid.spacing_px), "grid_confidence": grid.confidence,
        "reference_deg": reference, "axon_length_px": round(axons.length_px, 1),
        "axon_mean_direction_deg": blank(axial_mean_deg(axons.directions_deg, axons.weights_px)),
        "axon_alignment": blank(alignment), "n_segments": len(axons.segments),
        "n_short_segments": axons.too_short, "duplicate_of": "", "note": "; ".join(note),
    }  # fmt: skip
    segment_rows = [
        {
            "image": source.name,
            "group": source.group,
            "segment_id": s.segment_id,
            "length_px": round(s.length_px, 1),
            "direction_deg": round(s.direction_deg, 2),
            "relative_deg": round(float(rel), 2),
            "row": round(s.row, 1),
            "col": round(s.col, 1),
        }
        for s, rel in zip(axons.segments, folded, strict=True)
    ]
    arrays = {
        "grid_found": np.array([grid.found]),
        "image_length": np.array([axons.length_px]),
        "alignment": np.array([np.nan if alignment is None else alignment]),
        "folded": folded,
        "offsets": offsets,
        "segment_length": np.array([s.length_px for s in axons.segments]),
        "pixel_offsets": axons.directions_deg - reference,
        "pixel_weights": axons.weights_px,
    }
    return ImageResult(row, segment_rows, arrays)


def measure_all(sources: list[Source], cfg: DictConfig) -> list[ImageResult]:
    """Measure every image; byte-identical repeats are marked and keep no arrays for the stats."""
    results, seen = [], {}
    palette = OmegaConf.to_container(cfg.palette, resolve=True)
    for source in sources:
        image, mask = read_pair(source, cfg.axons.axon_value, palette)
        result = measure(source, image, mask, cfg)
        first = seen.setdefault(hashlib.sha1(image.tobytes()).hexdigest(), source.name)
        if first != source.name:
            note = "; ".join(filter(None, [result.row["note"], "duplicate: not in statistics"]))
            result = ImageResult({**result.row, "duplicate_of": first, "note": note}, [], {})
        results.append(result)
    return results


def pool(results: list[ImageResult]) -> dict[str, dict[str, np.ndarray]]:
    """Concatenate the arrays of every (non-duplicate) image per group, groups sorted by name."""
    groups: dict[str, dict[str, list[np.ndarray]]] = {}
    for result in results:
        if result.arrays:
            group = groups.setdefault(str(result.row["group"]), {})
            for key, array in result.arrays.items():
                group.setdefault(key, []).append(array)
    return {
        name: {key: np.concatenate(parts) for key, parts in group.items()}
        for name, group in sorted(groups.items())
    }


def analyze(cfg: DictConfig) -> Path:
    """Measure every image, write the tables, tests, summary and plots to cfg.output."""
    output = Path(cfg.output)
    sources, unused = find_sources(Path(cfg.images), cfg.masks, cfg.group_by)
    results = measure_all(sources, cfg)
    groups = pool(results)
    tests = run_tests(
        {g: a["folded"] for g, a in groups.items()},
        {g: a["offsets"] for g, a in groups.items()},
        {g: a["alignment"][np.isfinite(a["alignment"])] for g, a in groups.items()},
        **cfg.stats,
    )
    summaries = [
        describe_group(g, a["grid_found"], a["image_length"], a["alignment"], a["folded"],
                       a["segment_length"], cfg.summary.near_axis_deg)
        for g, a in groups.items()
    ]  # fmt: skip
    rows = [r.row for r in results]
    notes = run_notes(rows, unused, cfg.axons.axon_value)
    io.write_csv(output / "per_image.csv", rows, IMAGE_COLUMNS)
    io.write_csv(
        output / "segments.csv", [s for r in results for s in r.segment_rows], SEGMENT_COLUMNS
    )
    io.write_csv(output / "stats.csv", [t.row() for t in tests], STATS_COLUMNS)
    text = summary_text(summaries, tests, cfg.summary.alpha, cfg.summary.near_axis_deg, notes)
    with io.atomic_path(output / "summary.txt") as tmp:
        tmp.write_text(text)
    for g, a in groups.items():
        plots.group_figures(output, g, a["pixel_offsets"], a["pixel_weights"], **cfg.plots)
    directions = {g: (a["pixel_offsets"], a["pixel_weights"]) for g, a in groups.items()}
    titles = {g: rose_title(g, a["grid_found"]) for g, a in groups.items()}
    figure = plots.rose_panel(directions, cfg.plots.bins, titles)
    plots.save(figure, output / "rose_by_group.png", cfg.plots.dpi)
    return output


def rose_title(group: str, grid_found: np.ndarray) -> str:
    """Group name, and what 0 deg means when some of its images had no grid."""
    if grid_found.all():
        return group
    return f"{group} (no grid)" if not grid_found.any() else f"{group}\n(some without grid)"


def blank(value: float | None, digits: int = 3) -> float | str:
    """A rounded number for a CSV cell, or an empty cell for None."""
    return "" if value is None else round(value, digits)


def run_notes(rows: list[dict[str, object]], unused: list[Path], axon_value: int) -> list[str]:
    """Run-level remarks for summary.txt: duplicates, images without grid or axons, stray masks."""
    notes = []
    for label, test in (
        ("duplicate images (left out of statistics)", lambda r: r["duplicate_of"]),
        ("images without a detected grid", lambda r: r["grid_angle"] == ""),
        ("images without axons in the mask", lambda r: r["axon_length_px"] == 0),
    ):
        names = [str(r["image"]) for r in rows if test(r)]
        if names:
            notes.append(f"{len(names)} {label}: {', '.join(names[:12])}")
    if rows and all(r["axon_length_px"] == 0 for r in rows):
        notes.append(
            f"no mask holds axon pixels (value {axon_value}): neuron-only masks? use masks_axons/ "
            "or a model trained with task=axons"
        )
    if unused:
        shown = ", ".join(p.name for p in unused[:12])
        notes.append(f"{len(unused)} mask files matched no image: {shown}")
    return notes


if __name__ == "__main__":
    main()
