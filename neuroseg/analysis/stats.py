"""Do axon directions differ between plate types, and are they uniform? Tests on folded angles.

Samples are axon segments (unbranched skeleton pieces of at least `min_segment_px`), one angle
each: the angle to the nearest grid axis folded to [0, 45]. Segments, not skeleton pixels, are
the unit because neighbouring pixels of one axon are not independent observations; weighting by
length lives in the plots (share of axon length) and in the per-image alignment index. Segments
of one image still share a culture, so per-image tests (n = images) are reported beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
from scipy import stats

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


def rayleigh_test(angles_rad: np.ndarray) -> tuple[float, float]:
    """Rayleigh test of circular uniformity: (mean resultant length R, p-value).

    p uses Zar's (1999, eq. 27.4) correction of exp(-n R^2), accurate for n >= 10.
    """
    n = angles_rad.size
    r = float(np.hypot(np.cos(angles_rad).mean(), np.sin(angles_rad).mean()))
    big_r = n * r
    p = np.exp(np.sqrt(1 + 4 * n + 4 * (n * n - big_r * big_r)) - (1 + 2 * n))
    return r, float(min(max(p, 0.0), 1.0))


def uniformity_tests(
    folded_deg: Mapping[str, np.ndarray],
    offsets_deg: Mapping[str, np.ndarray],
    min_samples: int = 5,
) -> list[HypothesisTest]:
    """Per group: KS of folded angles against uniform [0, 45], and Rayleigh on 4 x offset angles.

    offsets_deg are direction minus reference; quadrupling maps the four lattice axes onto one
    direction, so alignment with a square lattice becomes a single circular mode.
    """
    results = []
    for group in sorted(folded_deg):
        folded, offsets = folded_deg[group], offsets_deg[group]
        if folded.size < min_samples:
            results += [
                HypothesisTest(name, group, "", folded.size, "", None, None)
                for name in ("ks_uniform", "rayleigh_4fold")
            ]
            continue
        ks = stats.kstest(folded, stats.uniform(loc=0, scale=45).cdf)
        r, p = rayleigh_test(np.radians(offsets) * 4)
        results.append(
            HypothesisTest(
                "ks_uniform", group, "", folded.size, "", float(ks.statistic), float(ks.pvalue)
            )
        )
        results.append(HypothesisTest("rayleigh_4fold", group, "", offsets.size, "", r, p))
    return results


def pairwise_ks(
    samples: Mapping[str, np.ndarray], test: str, min_samples: int = 5
) -> list[HypothesisTest]:
    """Two-sample Kolmogorov-Smirnov test between every pair of groups (sorted by name)."""
    results = []
    for a, b in combinations(sorted(samples), 2):
        x, y = np.asarray(samples[a], float), np.asarray(samples[b], float)
        x, y = x[np.isfinite(x)], y[np.isfinite(y)]
        if min(x.size, y.size) < min_samples:
            results.append(HypothesisTest(test, a, b, x.size, y.size, None, None))
            continue
        ks = stats.ks_2samp(x, y)
        results.append(
            HypothesisTest(test, a, b, x.size, y.size, float(ks.statistic), float(ks.pvalue))
        )
    return results


def holm(results: list[HypothesisTest]) -> list[HypothesisTest]:
    """Holm-Bonferroni adjusted p-values within each test name (a family of comparisons)."""
    adjusted: dict[int, float] = {}
    for name in {r.test for r in results}:
        family = [
            (i, r.p_value)
            for i, r in enumerate(results)
            if r.test == name and r.p_value is not None
        ]
        family.sort(key=lambda item: item[1])
        running = 0.0
        for rank, (i, p) in enumerate(family):
            running = max(running, min(1.0, (len(family) - rank) * p))
            adjusted[i] = running
    return [
        HypothesisTest(**{**asdict(r), "p_holm": adjusted.get(i)}) for i, r in enumerate(results)
    ]


def run_tests(
    folded_deg: Mapping[str, np.ndarray],
    offsets_deg: Mapping[str, np.ndarray],
    image_alignment: Mapping[str, np.ndarray],
    min_segments: int = 10,
    min_images: int = 3,
) -> list[HypothesisTest]:
    """All tests of stats.csv: pairwise KS on segments and on per-image alignment, uniformity."""
    results = pairwise_ks(folded_deg, "ks_segments", min_segments)
    results += pairwise_ks(image_alignment, "ks_images", min_images)
    results += uniformity_tests(folded_deg, offsets_deg, min_segments)
    return holm(results)


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


def verdict(result: HypothesisTest, alpha: float) -> str:
    """'p = 3.2e-05 (D = 0.41; n = 120 vs 98)' plus a plain-words reading at level alpha."""
    if result.p_value is None:
        return f"not tested (n = {result.n_a} vs {result.n_b or '-'}, too few)"
    p = result.p_holm if result.p_holm is not None else result.p_value
    word = "SIGNIFICANT" if p < alpha else "not significant"
    n = f"n = {result.n_a}" + (f" vs {result.n_b}" if result.group_b else "")
    return (
        f"{word}: p {format_p(result.p_value)} (Holm-adjusted {format_p(p)}; "
        f"statistic {result.statistic:.3f}; {n})"
    )


def format_p(p: float) -> str:
    """'= 0.031' style, 2 significant digits; below double precision '< 1e-300'."""
    return "< 1e-300" if p < 1e-300 else f"= {p:.2g}"


def summary_text(
    groups: list[GroupSummary],
    results: list[HypothesisTest],
    alpha: float,
    near_axis_deg: float,
    notes: list[str],
) -> str:
    """Plain-language report: per group numbers, which groups differ, which are non-uniform."""
    random_share = near_axis_deg / 45.0
    lines = [
        "Do the nanopillar grids steer axon growth?",
        "",
        "Each axon segment's direction is measured against the nearest axis of the pillar grid",
        "found in its own image: 0 deg = along a grid axis, 45 deg = along a diagonal. Images",
        "without a detected grid (flat plates) are measured against a fixed axis instead (the",
        "image x axis unless no_grid_reference_deg says otherwise), which unguided axons have",
        "no reason to follow: their angles should spread evenly over 0-45 deg.",
        "Tests count axon segments (unbranched pieces of the skeleton) or images (n below);",
        "p-values are Holm-adjusted within each kind of test (all pairs, or all groups).",
        "",
        f"Per group (fraction of axon length within {near_axis_deg:g} deg of an axis; "
        f"{random_share:.0%} if directions were random):",
    ]
    for g in groups:
        lines.append(
            f"  {g.group}: {g.n_images} images ({g.n_with_grid} with grid, {g.n_without_axons} "
            f"without axons), {g.n_segments} segments, {g.length_px:.0f} px of axon; median "
            f"angle {fmt(g.median_folded_deg, '.1f')} deg, near-axis share "
            f"{fmt(g.near_axis_fraction, '.0%')}, alignment index {fmt(g.mean_alignment)}"
        )
    lines += ["", f"Are directions uniform within a group? (level {alpha:g})"]
    lines += [
        f"  {r.group_a} [{r.test}]: {verdict(r, alpha)}"
        for r in results
        if r.test in ("ks_uniform", "rayleigh_4fold")
    ]
    for test, title in (
        ("ks_segments", "Do groups differ? Segment angles, two-sample Kolmogorov-Smirnov"),
        ("ks_images", "Do groups differ? Per-image alignment index (n = images; conservative)"),
    ):
        lines += ["", f"{title}:"]
        lines += [
            f"  {r.group_a} vs {r.group_b}: {verdict(r, alpha)}" for r in results if r.test == test
        ]
    lines += [
        "",
        "Segments of one image share a culture and are not fully independent, so segment-level",
        "p-values overstate certainty when few images are analysed; trust the per-image test.",
    ]
    if notes:
        lines += ["", "Notes:"] + [f"  {note}" for note in notes]
    return "\n".join(lines) + "\n"
