"""The lab's answer, one claim per row: is each group aligned with its grid, does each grid
differ from the flat plate, what do pillar height and spacing do (the 2 x 2 design).

The unit of every claim is the image, or the plate when a plate table says which images share
one: axons of one image (or plate) share a culture and often a direction, so counting segments
would pretend to far more independent observations than there are. Each unit contributes its
alignment C = length-weighted mean of cos 4 (direction - grid axis): +1 along the grid axes,
-1 along the diagonals, 0 without preference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from neuroseg.analysis.resampling import (
    PermutationTest,
    bootstrap_ci,
    holm_adjust,
    residual_test,
    sign_flip_test,
    stratified_test,
    two_sample_test,
)
from neuroseg.analysis.settings import Condition
from neuroseg.errors import UsageError

CONCLUSION_COLUMNS = (
    "question", "group", "reference", "unit", "n_images", "n_units", "effect", "ci_low",
    "ci_high", "p_value", "p_adjusted", "significant", "direction", "test",
)  # fmt: skip
HEIGHT, SPACING, INTERACTION = "height", "spacing", "height x spacing"


@dataclass(frozen=True)
class ImageRecord:
    """What the statistics need of one image; alignment None when it holds no axon length."""

    image: str
    group: str
    alignment: float | None
    axon_length_px: float
    n_segments: int
    plate: str = ""
    included: bool = True  # False: left out (e.g. a grid condition where no grid was found)


@dataclass(frozen=True)
class Claim:
    """One row of conclusions.csv; p_value None when too few units to test (listed anyway)."""

    family: str  # Holm family: aligned, differs or design
    question: str  # aligned or differs
    group: str
    reference: str  # "" (aligned), the flat group, or the 2 x 2 factor
    unit: str  # image or plate
    n_images: int
    n_units: int
    effect: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    test: str
    p_adjusted: float | None = None
    significant: bool = False

    @property
    def direction(self) -> str:
        """'axes' (C up), 'diagonals' (C down) for a significant claim, else 'none'."""
        if not self.significant or not self.effect:
            return "none"
        return "axes" if self.effect > 0 else "diagonals"

    def row(self) -> dict[str, object]:
        """The CSV row: numbers at 4 significant digits, empty cells where not tested."""
        low, high = self.ci if self.ci else (None, None)
        cells = {
            "question": self.question, "group": self.group, "reference": self.reference,
            "unit": self.unit, "n_images": self.n_images, "n_units": self.n_units,
            "effect": self.effect, "ci_low": low, "ci_high": high, "p_value": self.p_value,
            "p_adjusted": self.p_adjusted, "significant": str(self.significant).lower(),
            "direction": self.direction, "test": self.test,
        }  # fmt: skip
        return {
            k: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else v)
            for k, v in cells.items()
        }


def image_record(row: Mapping[str, object]) -> ImageRecord:
    """The statistics' view of a per_image.csv row: empty alignment = no axons, no C."""
    alignment = row["axon_alignment"]
    included = row.get("included", True)
    return ImageRecord(
        image=str(row["image"]),
        group=str(row["group"]),
        alignment=None if alignment in ("", None) else float(alignment),
        axon_length_px=float(row["axon_length_px"]),
        n_segments=int(row["n_segments"]),
        included=str(included).lower() not in ("false", "0", ""),
    )


def unit_alignment(records: Sequence[ImageRecord]) -> dict[str, tuple[np.ndarray, int]]:
    """{group: (C per unit, images used)}: C per image, or the mean C of each plate's images."""
    groups: dict[str, dict[str, list[float]]] = {}
    for r in records:
        units = groups.setdefault(r.group, {})
        if r.included and r.alignment is not None and np.isfinite(r.alignment):
            units.setdefault(r.plate or r.image, []).append(r.alignment)
    return {
        g: (np.array([np.mean(v) for v in units.values()]), sum(map(len, units.values())))
        for g, units in sorted(groups.items())
    }


@dataclass(frozen=True)
class TestPlan:
    """How every claim of one run is tested: the unit, the fewest units a test needs, the
    alternative, the permutation and bootstrap sizes, the confidence level, one seeded rng."""

    unit: str
    min_units: int
    alternative: str
    permutations: int
    resamples: int
    confidence: float
    rng: np.random.Generator

    def interval(
        self, samples: list[np.ndarray], weights: list[float]
    ) -> tuple[float, float] | None:
        """Bootstrap interval of the weighted sum of sample means."""
        return bootstrap_ci(samples, weights, self.confidence, self.resamples, self.rng)


def conclude(
    records: Sequence[ImageRecord],
    conditions: Mapping[str, Condition],
    alpha: float = 0.05,
    alternative: str = "two-sided",
    permutations: int = 20000,
    resamples: int = 2000,
    confidence: float = 0.95,
    min_units: int = 3,
    seed: int = 0,
) -> list[Claim]:
    """Every claim: aligned per group, each grid vs each flat plate, the 2 x 2 effects; Holm."""
    odd = [name for name in conditions if not isinstance(name, str)]
    if odd:
        raise UsageError(f"conditions: {odd[0]!r} is not a condition name; quote it in conf")
    unit = "plate" if any(r.plate for r in records) else "image"
    # a test of no unit has no null distribution
    plan = TestPlan(
        unit, max(min_units, 1), alternative, permutations, resamples, confidence,
        np.random.default_rng(seed),
    )  # fmt: skip
    groups = unit_alignment(records)
    claims = aligned_claims(groups, plan) + differs_claims(groups, conditions, plan)
    return adjust(claims + design_claims(groups, conditions, plan), alpha)


def aligned_claims(groups: Mapping[str, tuple[np.ndarray, int]], plan: TestPlan) -> list[Claim]:
    """Per group: is mean C off 0 (sign-flip test on the units)?"""
    claims = []
    for group, (values, n_images) in groups.items():
        tested = values.size >= plan.min_units
        test = (
            sign_flip_test(values, plan.alternative, plan.permutations, plan.rng)
            if tested
            else None
        )
        claims.append(
            Claim(
                "aligned", "aligned", group, "", plan.unit, n_images, values.size,
                float(values.mean()) if values.size else None,
                plan.interval([values], [1.0]) if tested else None,
                test.p if test else None, label("sign-flip", test),
            )
        )  # fmt: skip
    return claims


def differs_claims(
    groups: Mapping[str, tuple[np.ndarray, int]],
    conditions: Mapping[str, Condition],
    plan: TestPlan,
) -> list[Claim]:
    """Each grid condition against each flat plate: difference in mean C (label permutation)."""
    flats = [g for g in groups if g in conditions and conditions[g].spacing_um is None]
    grids = [g for g in groups if g in conditions and g not in flats]
    claims = []
    for flat in flats:
        for group in grids:
            (a, n_a), (b, n_b) = groups[group], groups[flat]
            tested = min(a.size, b.size) >= plan.min_units
            test = (
                two_sample_test(a, b, plan.alternative, plan.permutations, plan.rng)
                if tested
                else None
            )
            claims.append(
                Claim(
                    "differs", "differs", group, flat, plan.unit, n_a + n_b, a.size + b.size,
                    float(a.mean() - b.mean()) if a.size and b.size else None,
                    plan.interval([a, b], [1.0, -1.0]) if tested else None,
                    test.p if test else None, label("label permutation", test),
                )
            )  # fmt: skip
    return claims


def design_cells(conditions: Mapping[str, Condition]) -> list[str] | None:
    """The 2 x 2 conditions ordered (h0 s0, h0 s1, h1 s0, h1 s1), or None if not a 2 x 2."""
    cells = {
        (float(c.height_nm), float(c.spacing_um)): name
        for name, c in conditions.items()
        if c.height_nm is not None and c.spacing_um is not None
    }
    heights, spacings = sorted({h for h, _ in cells}), sorted({s for _, s in cells})
    if len(heights) != 2 or len(spacings) != 2 or len(cells) != 4:
        return None
    return [cells[h, s] for h in heights for s in spacings]


def design_claims(
    groups: Mapping[str, tuple[np.ndarray, int]],
    conditions: Mapping[str, Condition],
    plan: TestPlan,
) -> list[Claim]:
    """Main effects of height and spacing and their interaction on C (cell means, unweighted).

    Main effects: two-sided, shuffling one factor's labels within levels of the other (exact
    under "this factor changes nothing"). Interaction: Freedman-Lane residual permutation.
    """
    names = design_cells(conditions)
    if names is None:
        return []
    samples = [groups.get(n, (np.array([]), 0))[0] for n in names]
    n_images = sum(groups.get(n, (None, 0))[1] for n in names)
    low, tall, wide = conditions[names[0]], conditions[names[2]], conditions[names[1]]
    effects = (
        (HEIGHT, f"{tall.height_nm:g} nm - {low.height_nm:g} nm", [-0.5, -0.5, 0.5, 0.5]),
        (SPACING, f"{wide.spacing_um:g} um - {low.spacing_um:g} um", [-0.5, 0.5, -0.5, 0.5]),
        (INTERACTION, f"({names[3]} - {names[2]}) - ({names[1]} - {names[0]})", [1, -1, -1, 1]),
    )
    tested = min(x.size for x in samples) >= plan.min_units
    values = np.concatenate(samples)
    cells = np.repeat(np.arange(4), [x.size for x in samples])
    height, spacing = cells // 2, cells % 2
    claims = []
    for factor, group, weights in effects:
        contrast, test = np.array(weights), None
        if tested and factor == INTERACTION:
            additive = np.column_stack([np.ones(values.size), height, spacing])
            test = residual_test(values, cells, contrast, additive, plan.permutations, plan.rng)
        elif tested:
            strata = spacing if factor == HEIGHT else height
            test = stratified_test(values, cells, contrast, strata, plan.permutations, plan.rng)
        effect = (
            sum(w * x.mean() for w, x in zip(weights, samples, strict=True)) if tested else None
        )
        kind = "residual permutation" if factor == INTERACTION else "stratified permutation"
        claims.append(
            Claim(
                "design", "differs", group, factor, plan.unit, n_images, values.size,
                float(effect) if tested else None,
                plan.interval(samples, weights) if tested else None,
                test.p if test else None, label(kind, test),
            )
        )  # fmt: skip
    return claims


def label(kind: str, test: PermutationTest | None) -> str:
    """'sign-flip, exact (256)' / '... monte carlo (9999)' / 'not tested (too few units)'."""
    if test is None:
        return "not tested (too few units)"
    how = "exact" if test.exact else "monte carlo"
    return f"{kind}, {how} ({test.draws})"


def adjust(claims: list[Claim], alpha: float) -> list[Claim]:
    """Holm within each family over the tested claims; significant = adjusted p <= alpha."""
    out = list(claims)
    for family in dict.fromkeys(c.family for c in claims):
        index = [i for i, c in enumerate(claims) if c.family == family and c.p_value is not None]
        adjusted = holm_adjust([claims[i].p_value for i in index])
        for i, p in zip(index, adjusted, strict=True):
            out[i] = replace(claims[i], p_adjusted=p, significant=p <= alpha)
    return out
