"""Per-group description of axon segments, stats.csv's rows, and the plain-words summary.

Segments (unbranched skeleton pieces of at least `min_segment_px`) describe a group: median
folded angle, near-axis share. They are not tested: segments of one image share a culture and
often a direction, so every test lives in conclusions.py with the image (or plate) as the unit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from neuroseg.analysis.conclusions import Claim, claims_text

STATS_COLUMNS = ("test", "group_a", "group_b", "n_a", "n_b", "statistic", "p_value", "p_holm")


@dataclass(frozen=True)
class HypothesisTest:
    """One row of stats.csv; group_b and n_b are empty for one-sample tests, p None if not run."""

    test: str
    group_a: str
    group_b: str
    n_a: int
    n_b: int | str
    statistic: float | None
    p_value: float | None
    p_holm: float | None = None

    def row(self) -> dict[str, object]:
        """The CSV row: missing numbers as empty cells, floats at 6 significant digits."""
        return {
            key: "" if value is None else (f"{value:.6g}" if isinstance(value, float) else value)
            for key, value in asdict(self).items()
        }


def stats_rows(claims: list[Claim]) -> list[HypothesisTest]:
    """stats.csv: each claim's test on per-unit alignment C (effect as the statistic)."""
    return [
        HypothesisTest(
            c.test, c.group, c.reference, c.n_units, "", c.effect, c.p_value, c.p_adjusted
        )
        for c in claims
    ]


@dataclass(frozen=True)
class GroupSummary:
    """What a biologist wants to know first about one group; None where there are no segments."""

    group: str
    n_images: int
    n_with_grid: int
    n_without_axons: int
    n_segments: int
    length_px: float
    median_folded_deg: float | None
    near_axis_fraction: float | None
    mean_alignment: float | None


def describe_group(
    group: str,
    grid_found: np.ndarray,
    image_length_px: np.ndarray,
    image_alignment: np.ndarray,
    folded_deg: np.ndarray,
    segment_length_px: np.ndarray,
    near_axis_deg: float = 10.0,
) -> GroupSummary:
    """Counts, median folded angle, length fraction within `near_axis_deg` of an axis."""
    has_segments = folded_deg.size > 0
    alignment = image_alignment[np.isfinite(image_alignment)]
    return GroupSummary(
        group=group,
        n_images=int(grid_found.size),
        n_with_grid=int(grid_found.sum()),
        n_without_axons=int((image_length_px == 0).sum()),
        n_segments=int(folded_deg.size),
        length_px=float(image_length_px.sum()),
        median_folded_deg=float(np.median(folded_deg)) if has_segments else None,
        near_axis_fraction=float(
            segment_length_px[folded_deg <= near_axis_deg].sum() / segment_length_px.sum()
        )
        if has_segments
        else None,
        mean_alignment=float(alignment.mean()) if alignment.size else None,
    )


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for the summary, or 'n/a'."""
    return "n/a" if value is None else format(value, spec)


def summary_text(
    groups: list[GroupSummary],
    claims: list[Claim],
    alpha: float,
    confidence: float,
    near_axis_deg: float,
    notes: list[str],
) -> str:
    """Plain-language report: the claims (effect, interval, direction) first, then description."""
    random_share = near_axis_deg / 45.0
    lines = [
        "Do the nanopillar grids steer axon growth?",
        "",
        "Per image, alignment C = length-weighted mean of cos 4 (axon direction - grid axis):",
        "+1 = all axons along the grid axes, -1 = all along the diagonals, 0 = no preference.",
        "Images without a detected grid (flat plates) are measured against a fixed axis (the",
        "image x axis unless no_grid_reference_deg says otherwise). Every claim below counts",
        "images (or plates), never axon segments: axons of one image share a culture.",
    ]
    lines += claims_text(claims, alpha, confidence)
    lines += [
        "",
        "Description, not tests (segments of one image are not independent). Per group: "
        f"fraction of axon length within {near_axis_deg:g} deg of an axis ({random_share:.0%} "
        "for random directions):",
    ]
    for g in groups:
        lines.append(
            f"  {g.group}: {g.n_images} images ({g.n_with_grid} with grid, {g.n_without_axons} "
            f"without axons), {g.n_segments} segments, {g.length_px:.0f} px of axon; median "
            f"angle {fmt(g.median_folded_deg, '.1f')} deg, near-axis share "
            f"{fmt(g.near_axis_fraction, '.0%')}, alignment index {fmt(g.mean_alignment)}"
        )
    if notes:
        lines += ["", "Notes:"] + [f"  {note}" for note in notes]
    return "\n".join(lines) + "\n"
