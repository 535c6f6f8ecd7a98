"""Per-group description of axon segments, stats.csv's rows, and the plain-words summary.

Segments (unbranched skeleton pieces of at least `min_segment_px`) describe a group: median
folded angle, near-axis share. They are not tested: segments of one image share a culture and
often a direction, so every test lives in conclusions.py with the image (or plate) as the unit.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from neuroseg.analysis.conclusions import INTERACTION, Claim

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


def format_p(p: float) -> str:
    """'p < 0.001' or 'p = 0.031': a permutation p is only as fine as its relabellings."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def claim_words(claim: Claim, confidence: float) -> tuple[str, str]:
    """(sentence, detail): effect and interval first, then the direction in plain words; the
    detail gives p, the count and the test ("" when not tested). summary.txt and report.html
    both say a claim in these words."""
    head = {
        "aligned": f"{claim.group}: mean C",
        "differs": f"{claim.group} - {claim.reference}: difference in mean C",
        "design": f"{claim.reference}, {claim.group}:",
    }[claim.family]
    count = f"{claim.n_units} {claim.unit}s" + (
        f" ({claim.n_images} images)" if claim.unit == "plate" else ""
    )
    if claim.effect is None or claim.p_value is None:
        return f"{head} not tested: {count}, too few", ""
    ci = f"{confidence:.0%} CI {fmt_ci(claim.ci)}"
    toward = "toward the axes" if claim.effect > 0 else "toward the diagonals"
    if not claim.significant:
        words = "no clear " + ("preference" if claim.family == "aligned" else "difference")
    elif claim.family == "aligned":
        words = "axons run " + ("along the axes" if claim.effect > 0 else "along the diagonals")
    elif claim.family == "differs":
        words = f"C is {'higher' if claim.effect > 0 else 'lower'} on {claim.group} ({toward})"
    elif claim.reference == INTERACTION:
        words = f"spacing matters {'more' if claim.effect > 0 else 'less'} on the taller pillars"
    else:
        first = claim.group.split(" - ")[0]  # '400 nm - 200 nm': the higher level first
        words = f"C is {'higher' if claim.effect > 0 else 'lower'} at {first} ({toward})"
    p = format_p(claim.p_adjusted if claim.p_adjusted is not None else claim.p_value)
    detail = f"Holm-adjusted {p}; {count}; {claim.test}"
    return f"{head} {claim.effect:+.2f} ({ci}): {words}", detail


def claim_line(claim: Claim, confidence: float) -> str:
    """summary.txt's lines of one claim: its sentence, then its detail indented below it."""
    sentence, detail = claim_words(claim, confidence)
    return f"{sentence}\n      {detail}" if detail else sentence


def fmt_ci(ci: tuple[float, float] | None) -> str:
    """'+0.12 to +0.40', or 'n/a' with fewer than 2 units on a side."""
    return "n/a" if ci is None else f"{ci[0]:+.2f} to {ci[1]:+.2f}"


LAB_QUESTION = "Do the nanopillar grids steer axon growth?"
# What C is and what every claim counts, as summary.txt's lines (report.html joins them).
ALIGNMENT_INDEX = (
    "Per image, alignment C = length-weighted mean of cos 4 (axon direction - grid axis):",
    "+1 = all axons along the grid axes, -1 = all along the diagonals, 0 = no preference.",
    "Images without a detected grid (flat plates) are measured against a fixed axis (the",
    "image x axis unless no_grid_reference_deg says otherwise). Every claim below counts",
    "images (or plates), never axon segments: axons of one image share a culture.",
)
# The plain question each family of claims answers, in the summary's order.
QUESTIONS = {
    "aligned": "Are axons aligned with the grid? (mean C per group; sign-flip test)",
    "differs": "Does each grid differ from the flat plate? (difference in mean C; permutation)",
    "design": "What do pillar height and spacing do? (2 x 2 on the grid plates; permutation)",
}


def unit_warnings(claims: Sequence[Claim]) -> list[str]:
    """Caveats about the unit of the claims, one string each (summary.txt wraps them)."""
    if any(c.unit == "image" for c in claims):
        return [
            "Images of one plate may not be independent (one culture): with a plate table "
            "(plates=<csv with columns image,plate>) the plate becomes the unit."
        ]
    return []


def significance_rule(alpha: float) -> str:
    """What 'significant' means in every claim's words."""
    return f"Significant: Holm-adjusted p <= {alpha:g} within each question above."


def claims_text(claims: Sequence[Claim], alpha: float, confidence: float) -> list[str]:
    """The summary's claims, by family, each under a plain question."""
    lines = []
    for family, title in QUESTIONS.items():
        members = [c for c in claims if c.family == family]
        if members:
            lines += ["", title] + [f"  {claim_line(c, confidence)}" for c in members]
    for warning in unit_warnings(claims):
        lines += ["", *textwrap.wrap(warning, 80)]
    lines += ["", significance_rule(alpha)]
    return lines


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
    lines = [LAB_QUESTION, "", *ALIGNMENT_INDEX]
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
