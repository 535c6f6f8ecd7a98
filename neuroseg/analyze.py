"""Do the nanopillar grids steer axon growth? python -m neuroseg.analyze images=<raw tree>.

Per image: the pillar grid's angle from the original, the axons' directions from the mask, and
their alignment C. Per group: rose plots; every claim (aligned, differs from the flat plate, the
2 x 2 effects) tested on per-image (or per-plate) C by permutation: conclusions.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from neuroseg import io
from neuroseg.analysis import plots
from neuroseg.analysis.conclusions import (
    CONCLUSION_COLUMNS,
    assign_plates,
    conclude,
    image_record,
    read_plates,
)
from neuroseg.analysis.design import GRID_COLUMNS, design_of, detection_rows, grid_notes
from neuroseg.analysis.measure import (
    IMAGE_COLUMNS,
    SEGMENT_COLUMNS,
    describe_pool,
    measure_all,
    pool,
)
from neuroseg.analysis.sources import find_sources
from neuroseg.analysis.stats import STATS_COLUMNS, stats_rows, summary_text
from neuroseg.cli import command
from neuroseg.runtime import progress_bar


@command("analyze")
def main(cfg: DictConfig) -> None:
    output = analyze(cfg)
    print((output / "summary.txt").read_text())
    print(f"tables and plots in {output}")


def analyze(cfg: DictConfig) -> Path:
    """Measure every image, write the tables, claims, summary and plots to cfg.output."""
    output = Path(cfg.output)
    plates = Path(cfg.plates) if cfg.plates else None
    plate_table = read_plates(plates) if plates else None  # a bad table fails before measuring
    sources, unused = find_sources(Path(cfg.images), cfg.masks, cfg.group_by)
    results = measure_all(progress_bar(sources, "images", "image", enabled=cfg.progress), cfg)
    groups = pool(results)
    # every image but duplicates: excluded ones (no grid found) are counted, not tested
    records = [image_record(r.row) for r in results if not r.row["duplicate_of"]]
    if plate_table is not None:
        records = assign_plates(records, plate_table, plates)
    settings = OmegaConf.to_container(cfg.stats, resolve=True)
    claims = conclude(records, OmegaConf.to_container(cfg.conditions, resolve=True), **settings)
    summaries = [describe_pool(g, a, cfg.summary.near_axis_deg) for g, a in groups.items()]
    rows = [r.row for r in results]
    design = {
        g: design_of(g, cfg.conditions, cfg.pixel_size_um) for g in {s.group for s in sources}
    }
    detection = detection_rows(rows, design)
    notes = grid_notes(rows, detection, design) + run_notes(rows, unused, cfg.axons.axon_value)
    io.write_csv(output / "per_image.csv", rows, IMAGE_COLUMNS)
    io.write_csv(output / "grids.csv", detection, GRID_COLUMNS)
    io.write_csv(
        output / "segments.csv", [s for r in results for s in r.segment_rows], SEGMENT_COLUMNS
    )
    io.write_csv(output / "conclusions.csv", [c.row() for c in claims], CONCLUSION_COLUMNS)
    io.write_csv(output / "stats.csv", [t.row() for t in stats_rows(claims)], STATS_COLUMNS)
    text = summary_text(
        summaries, claims, settings["alpha"], settings["confidence"], cfg.summary.near_axis_deg,
        notes,
    )  # fmt: skip
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


def run_notes(rows: list[dict[str, object]], unused: list[Path], axon_value: int) -> list[str]:
    """Run-level remarks for summary.txt: duplicates, images without grid or axons, stray masks."""
    notes = []
    for label, test in (
        ("duplicate images (left out of statistics)", lambda r: r["duplicate_of"]),
        ("images without a detected grid", lambda r: r["grid_angle"] == "" and r["included"]),
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
