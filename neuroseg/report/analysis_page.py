"""analyze's report.html: the conclusions in the summary's words, in conclusions.csv's order;
the warnings; rose plots and per-condition tables; a thumbnail per image (axons, lattice axes,
grid-map boundary) and the images left out with their reason; provenance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuroseg.analysis.conclusions import Claim
from neuroseg.analysis.measure import ImageResult, ImageViewer
from neuroseg.analysis.settings import AnalysisRun, AnalysisSettings
from neuroseg.analysis.sources import ImageSource
from neuroseg.analysis.stats import (
    ALIGNMENT_INDEX,
    LAB_QUESTION,
    QUESTIONS,
    GroupSummary,
    claim_words,
    significance_rule,
    unit_warnings,
)
from neuroseg.io import read_csv
from neuroseg.report.html import REPORT_NAME, array_png, file_uri, png_uri, render, write_page
from neuroseg.report.provenance import provenance
from neuroseg.report.settings import ReportSettings
from neuroseg.report.tables import Row, csv_table, other_tables, records_table
from neuroseg.report.thumbnails import analysis_thumbnail

# Tables the page shows in their own sections; every other CSV of the run follows them.
ANALYSIS_TABLES = ("conclusions.csv", "per_image.csv", "grids.csv")


@dataclass(frozen=True)
class AnalysisFindings:
    """What run_analysis knows beyond its CSVs: the claims (conclusions.csv's rows, in order),
    the group descriptions, the notes, the plots per group ({group: [hist, rose]}, the panel
    under ""), the thumbnails by image name, and the files read."""

    claims: list[Claim]
    groups: list[GroupSummary]
    notes: list[str]
    figures: dict[str, list[Path]]
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: list[Path] = field(default_factory=list)


def thumbnail_viewer(
    settings: ReportSettings, axon_value: int
) -> tuple[ImageViewer, dict[str, np.ndarray]]:
    """A measure_all viewer that draws each image's thumbnail, and the dict it fills."""
    thumbnails: dict[str, np.ndarray] = {}

    def view(source: ImageSource, image: np.ndarray, mask: np.ndarray, result: ImageResult) -> None:
        angle = result.row.get("grid_angle")
        grid_angle = None if angle in ("", None) else float(angle)  # type: ignore[arg-type]
        thumbnails[source.name] = analysis_thumbnail(image, mask, grid_angle, settings, axon_value)

    return view, thumbnails


def question_blocks(
    claims: Sequence[Claim], rows: Sequence[Row], confidence: float
) -> list[dict[str, object]]:
    """Consecutive claims of one family under its question, each with its words and its row of
    conclusions.csv (the page's numbers)."""
    if len(claims) != len(rows):
        raise ValueError(f"{len(claims)} claims but {len(rows)} rows in conclusions.csv")
    blocks: list[dict[str, object]] = []
    for claim, row in zip(claims, rows, strict=True):
        if not blocks or blocks[-1]["family"] != claim.family:
            title = QUESTIONS.get(claim.family, claim.family)
            blocks.append({"family": claim.family, "title": title, "claims": []})
        sentence, detail = claim_words(claim, confidence)
        members: list[dict[str, object]] = blocks[-1]["claims"]  # type: ignore[assignment]
        members.append({"sentence": sentence, "detail": detail, "row": row})
    return blocks


def image_cards(rows: Sequence[Row], thumbnails: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """One card per row of per_image.csv: the row and its thumbnail (None if not drawn)."""
    return [
        {
            "row": row,
            "thumbnail": png_uri(array_png(thumbnails[row["image"]]))
            if row["image"] in thumbnails
            else None,
            "left_out": row.get("included", "True") == "False",
        }
        for row in rows
    ]


def group_plot_uris(figures: dict[str, list[Path]]) -> list[dict[str, object]]:
    """Each group's histogram and rose as data URIs, groups sorted by name."""
    return [
        {"name": group, "figures": [file_uri(path) for path in paths]}
        for group, paths in sorted(figures.items())
        if group
    ]


def write_analysis_report(
    output: Path, settings: AnalysisSettings, run: AnalysisRun, findings: AnalysisFindings
) -> Path:
    """report.html in `output`, beside the tables it reads back; returns its path."""
    limit = settings.report.max_table_rows
    # every claim is shown, however many: the limit is for long descriptive tables
    claims_limit = max(limit, len(findings.claims))
    conclusions = csv_table(output / "conclusions.csv", "Every claim", claims_limit)
    per_image = csv_table(output / "per_image.csv", "Every image", limit)
    confidence = settings.stats.confidence
    context = {
        "title": LAB_QUESTION,
        "command": "analyze",
        "definition": " ".join(ALIGNMENT_INDEX),
        "questions": question_blocks(findings.claims, conclusions.rows, confidence),
        "significance": significance_rule(settings.stats.alpha),
        "warnings": unit_warnings(findings.claims) + findings.notes,
        "panel": [file_uri(p) for p in findings.figures.get("", [])],
        "groups": group_plot_uris(findings.figures),
        "group_table": records_table("Per condition: description, not tests", findings.groups),
        "grids": csv_table(output / "grids.csv", "Grid detection per condition", limit),
        "conclusions": conclusions,
        "per_image": per_image,
        "cards": image_cards(read_csv(output / "per_image.csv"), findings.thumbnails),
        "more": other_tables(output, ANALYSIS_TABLES, limit),
        "near_axis_deg": settings.summary.near_axis_deg,
        "colors": settings.report.colors,
        "grid_maps": False,  # no grid map is drawn yet
        "provenance": provenance([run, settings], findings.inputs),
    }
    path = output / REPORT_NAME
    write_page(path, render("analysis.html.j2", context))
    return path
