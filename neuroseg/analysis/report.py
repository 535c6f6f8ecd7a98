"""One analysis run: measure every image, test the claims, write the tables, summary and plots.

Per image: the pillar grid's angle from the original, the axons' directions from the mask, and
their alignment C. Per group: rose plots; every claim (aligned, differs from the flat plate, the
2 x 2 effects) tested on per-image (or per-plate) C by permutation: conclusions.csv. All of it
on one page: report.html (neuroseg/report/).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from neuroseg import io
from neuroseg.analysis import plots
from neuroseg.analysis.conclusions import CONCLUSION_COLUMNS, Claim, conclude, image_record
from neuroseg.analysis.design import GRID_COLUMNS, design_of, detection_rows, grid_notes
from neuroseg.analysis.measure import (
    IMAGE_COLUMNS,
    SEGMENT_COLUMNS,
    ImageResult,
    describe_pool,
    measure_all,
    pool,
)
from neuroseg.analysis.plates import assign_plates, read_plates
from neuroseg.analysis.settings import AnalysisRun, AnalysisSettings
from neuroseg.analysis.sources import find_sources
from neuroseg.analysis.stats import STATS_COLUMNS, GroupSummary, stats_rows, summary_text
from neuroseg.report.analysis_page import (
    AnalysisFindings,
    thumbnail_viewer,
    write_analysis_report,
)
from neuroseg.runtime import progress_bar

# Per group: every (non-duplicate) image's arrays concatenated (see measure.pool).
Pools = dict[str, dict[str, np.ndarray]]


def run_analysis(settings: AnalysisSettings, run: AnalysisRun) -> Path:
    """Measure every image of `run.images`, write tables, claims, summary and plots to
    `run.output`; returns that folder."""
    output = Path(run.output)
    plate_table = read_plates(run.plate_table) if run.plate_table else None  # fails early
    sources, unused = find_sources(Path(run.images), run.mask_dir, run.group_by)
    images = progress_bar(sources, "images", "image", enabled=run.progress)
    view, thumbnails = thumbnail_viewer(settings.report, settings.axons.axon_value)
    results = measure_all(images, settings, view)
    groups = pool(results)
    # every image but duplicates: excluded ones (no grid found) are counted, not tested
    records = [image_record(r.row) for r in results if not r.row["duplicate_of"]]
    if plate_table is not None:
        records = assign_plates(records, plate_table, run.plate_table)
    claims = conclude(records, settings.design, **asdict(settings.stats))
    rows = [r.row for r in results]
    design = {
        g: design_of(g, settings.design, settings.pixel_size_um) for g in {s.group for s in sources}
    }
    detection = detection_rows(rows, design)
    notes = grid_notes(rows, detection, design)
    notes += run_notes(rows, unused, settings.axons.axon_value)
    write_tables(output, results, detection, claims)
    near_axis_deg = settings.summary.near_axis_deg
    summaries = [describe_pool(g, a, near_axis_deg) for g, a in groups.items()]
    write_summary(output / "summary.txt", settings, summaries, claims, notes)
    figures = write_plots(output, groups, settings)
    inputs = [path for s in sources for path in (s.image, s.mask)]
    inputs += [run.plate_table] if run.plate_table else []
    findings = AnalysisFindings(claims, summaries, notes, figures, thumbnails, inputs)
    write_analysis_report(output, settings, run, findings)
    return output


def write_tables(
    output: Path,
    results: list[ImageResult],
    detection: list[dict[str, object]],
    claims: list[Claim],
) -> None:
    """per_image.csv, grids.csv, segments.csv, conclusions.csv and stats.csv in `output`."""
    io.write_csv(output / "per_image.csv", [r.row for r in results], IMAGE_COLUMNS)
    io.write_csv(output / "grids.csv", detection, GRID_COLUMNS)
    segments = [s for r in results for s in r.segment_rows]
    io.write_csv(output / "segments.csv", segments, SEGMENT_COLUMNS)
    io.write_csv(output / "conclusions.csv", [c.row() for c in claims], CONCLUSION_COLUMNS)
    io.write_csv(output / "stats.csv", [t.row() for t in stats_rows(claims)], STATS_COLUMNS)


def write_summary(
    path: Path,
    settings: AnalysisSettings,
    summaries: list[GroupSummary],
    claims: list[Claim],
    notes: list[str],
) -> None:
    """summary.txt: the claims in plain words, each group described, the run's notes."""
    stats, near_axis_deg = settings.stats, settings.summary.near_axis_deg
    text = summary_text(summaries, claims, stats.alpha, stats.confidence, near_axis_deg, notes)
    with io.atomic_path(path) as tmp:
        tmp.write_text(text)


def write_plots(output: Path, groups: Pools, settings: AnalysisSettings) -> dict[str, list[Path]]:
    """hist_<group>.png and rose_<group>.png per group, and rose_by_group.png side by side;
    returns {group: [hist, rose]} with the panel under ""."""
    bins, dpi = settings.plots.bins, settings.plots.dpi
    figures = {
        g: plots.group_figures(output, g, a["pixel_offsets"], a["pixel_weights"], bins, dpi)
        for g, a in groups.items()
    }
    directions = {g: (a["pixel_offsets"], a["pixel_weights"]) for g, a in groups.items()}
    titles = {g: rose_title(g, a["grid_found"]) for g, a in groups.items()}
    panel = output / "rose_by_group.png"
    plots.save(plots.rose_panel(directions, bins, titles), panel, dpi)
    return {"": [panel], **figures}


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
