"""Per-image measurement: grid from the original, axon directions from the mask, group pools."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from neuroseg import io
from neuroseg.analysis.grid import grid_angle_deg
from neuroseg.analysis.orientation import (
    alignment_index,
    axial_mean_deg,
    fold_relative_deg,
    measure_axons,
)
from neuroseg.analysis.sources import Source
from neuroseg.data.labels import class_mask
from neuroseg.data.pairing import pixel_hash

IMAGE_COLUMNS = (
    "image", "group", "grid_angle", "grid_spacing", "grid_confidence", "reference_deg",
    "axon_length_px", "axon_mean_direction_deg", "axon_alignment", "n_segments",
    "n_short_segments", "duplicate_of", "note",
)  # fmt: skip
SEGMENT_COLUMNS = (
    "image", "group", "segment_id", "length_px", "direction_deg", "relative_deg", "row", "col",
)  # fmt: skip


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


def measure_all(sources: Iterable[Source], cfg: DictConfig) -> list[ImageResult]:
    """Measure every image; byte-identical repeats are marked and keep no arrays for the stats."""
    results, seen = [], {}
    palette = OmegaConf.to_container(cfg.palette, resolve=True)
    for source in sources:
        image, mask = read_pair(source, cfg.axons.axon_value, palette)
        result = measure(source, image, mask, cfg)
        first = seen.setdefault(pixel_hash(image), source.name)
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


def blank(value: float | None, digits: int = 3) -> float | str:
    """A rounded number for a CSV cell, or an empty cell for None."""
    return "" if value is None else round(value, digits)
