"""Do the claims of conclusions.csv hold their level, find real effects, and cover the truth?

Run: python -m benchmarks.stats_calibration [--quick]   (writes results/stats_calibration.json)

Simulated data sets of the lab's shape (5 conditions x 8 images) go through the very function
analyze uses, `conclusions.conclude`, as per-image records; no images are drawn. Within an image
the axons share a direction: the image's direction mu, then each segment's doubled angle
2 theta ~ von Mises(2 mu, kappa) (kappa 0 = no sharing, 10 = nearly parallel). A grid effect
of strength lambda pulls mu toward the axes, 4 mu ~ von Mises(0, lambda) (toward the
diagonals: von Mises(pi, lambda)); without one mu is uniform. The true mean C of a condition is
then A1(lambda) * I2(kappa) / I0(kappa), so intervals can be checked against it.

1. null (every kappa): how often each claim is significant (raw p <= alpha: the test's own
   level) and how often each Holm family has any significant claim (family-wise error).
2. planted alignment at several strengths (kappa 3): how often "aligned" and "differs from the
   flat plate" are found, and with the right direction (axes in 200_4, 400_2, 400_4;
   diagonals in 200_2).
3. planted in 400_4 only: power of the 2 x 2 interaction and main effects.
Intervals: share of runs whose 95 % interval holds the true effect, per claim kind.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from scipy import special, stats

from benchmarks.common import machine_info, write_results
from neuroseg.analysis.conclusions import (
    HEIGHT,
    INTERACTION,
    SPACING,
    Claim,
    ImageRecord,
    conclude,
)
from neuroseg.analysis.orientation import alignment_index
from neuroseg.analysis.settings import Condition

CONFIG = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "analyze.yaml")
CONDITIONS = {name: Condition(**c) for name, c in CONFIG.conditions.items()}
IMAGES_PER_CONDITION = 8  # the lab's scale: 41 images over 5 conditions
KAPPAS = (0.0, 1.0, 3.0, 10.0)
STRENGTHS = (0.5, 1.0, 2.0, 4.0, 8.0)  # lambda of the pull toward the axes (diagonals in 200_2)
SIGNS = {"200_2": -1, "200_4": 1, "400_2": 1, "400_4": 1, "empty": 0}
NO_AXONS = 0.05  # share of images with no axon length (no C; counted, left out)


def simulate_image(
    rng: np.random.Generator, name: str, group: str, kappa: float, strength: float
) -> ImageRecord:
    """One image's record: 1 + Poisson(30) segments of log-normal length (median 60 px)."""
    if rng.random() < NO_AXONS:
        return ImageRecord(name, group, None, 0.0, 0)
    if strength > 0:
        mu = rng.vonmises(0.0, strength) / 4
    elif strength < 0:
        mu = rng.vonmises(np.pi, -strength) / 4
    else:
        mu = rng.uniform(0, np.pi)
    count = 1 + rng.poisson(30)
    lengths = np.maximum(15.0, rng.lognormal(np.log(60.0), 0.7, count))
    theta = mu + rng.vonmises(0.0, kappa, count) / 2
    c = alignment_index(np.degrees(theta), 0.0, lengths)
    return ImageRecord(name, group, c, float(lengths.sum()), count)


def simulate(
    rng: np.random.Generator, kappa: float, strengths: Mapping[str, float]
) -> list[ImageRecord]:
    """A data set: IMAGES_PER_CONDITION images per condition with the given grid strengths."""
    return [
        simulate_image(rng, f"{group}/{i}.tif", group, kappa, strengths.get(group, 0.0))
        for group in CONDITIONS
        for i in range(IMAGES_PER_CONDITION)
    ]


def true_mean_c(kappa: float, strength: float) -> float:
    """E[cos 4 theta] = E[cos 4 mu] E[cos 4 (theta - mu)] = A1(lambda) I2(kappa) / I0(kappa)."""
    pull = special.i1e(abs(strength)) / special.i0e(abs(strength)) * np.sign(strength)
    return float(pull * special.ive(2, kappa) / special.i0e(kappa))


def true_effects(kappa: float, strengths: Mapping[str, float]) -> dict[tuple[str, str], float]:
    """{(group, reference): true effect} for every claim of conclude (same group naming)."""
    m = {g: true_mean_c(kappa, strengths.get(g, 0.0)) for g in CONDITIONS}
    truth = {(g, ""): v for g, v in m.items()}
    truth.update({(g, "empty"): m[g] - m["empty"] for g in CONDITIONS if g != "empty"})
    a, b, c, d = (m[g] for g in ("200_2", "200_4", "400_2", "400_4"))
    truth[HEIGHT] = (c + d - a - b) / 2
    truth[SPACING] = (b + d - a - c) / 2
    truth[INTERACTION] = d - c - b + a
    return truth


def claim_key(claim: Claim) -> tuple[str, str] | str:
    """(group, reference) for aligned and differs claims, the factor for 2 x 2 claims."""
    return claim.reference if claim.family == "design" else (claim.group, claim.reference)


def rate(hits: int, runs: int) -> dict[str, float]:
    """A rate with its Clopper-Pearson 95 % interval."""
    ci = stats.binomtest(hits, runs).proportion_ci(0.95)
    return {"rate": hits / runs, "low": float(ci.low), "high": float(ci.high), "runs": runs}


def run_scenario(
    kappa: float, strengths: Mapping[str, float], runs: int, seed: int, settings: dict
) -> dict[str, object]:
    """Significant (raw and Holm), right-direction and covered counts per claim over runs."""
    rng = np.random.default_rng(seed)
    truth = true_effects(kappa, strengths)
    raw, held, right, covered = (defaultdict(int) for _ in range(4))
    family_any: dict[str, int] = defaultdict(int)
    for run in range(runs):
        claims = conclude(simulate(rng, kappa, strengths), CONDITIONS, seed=run, **settings)
        families = set()
        for claim in claims:
            key = claim_key(claim)
            raw[key] += claim.p_value is not None and claim.p_value <= settings["alpha"]
            held[key] += claim.significant
            right[key] += claim.significant and np.sign(claim.effect) == np.sign(truth[key])
            covered[key] += claim.ci is not None and claim.ci[0] <= truth[key] <= claim.ci[1]
            if claim.significant:
                families.add(claim.family)
        for family in families:
            family_any[family] += 1
    name = {k: k if isinstance(k, str) else " - ".join(filter(None, k)) for k in truth}
    return {
        "kappa": kappa,
        "strengths": dict(strengths),
        "true_effect": {name[k]: v for k, v in truth.items()},
        "raw_significant": {name[k]: rate(raw[k], runs) for k in truth},
        "holm_significant": {name[k]: rate(held[k], runs) for k in truth},
        "right_direction": {name[k]: rate(right[k], runs) for k in truth},
        "ci_coverage": {name[k]: rate(covered[k], runs) for k in truth},
        "family_any_significant": {
            f: rate(family_any[f], runs) for f in ("aligned", "differs", "design")
        },
    }


def pooled(result: dict, field: str, keys: list[str]) -> dict[str, float]:
    """Rate pooled over several claims of one kind (hits summed, runs summed)."""
    hits = sum(round(result[field][k]["rate"] * result[field][k]["runs"]) for k in keys)
    return rate(hits, sum(result[field][k]["runs"] for k in keys))


def kinds(result: dict) -> dict[str, list[str]]:
    """Claim names by kind: aligned (grid), aligned (flat), differs, and each 2 x 2 effect."""
    names = list(result["true_effect"])
    return {
        "aligned, grid": [n for n in names if n in SIGNS and n != "empty"],
        "aligned, flat": ["empty"],
        "differs vs empty": [n for n in names if n.endswith(" - empty")],
        HEIGHT: [HEIGHT],
        SPACING: [SPACING],
        INTERACTION: [INTERACTION],
    }


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few runs: a smoke test")
    parser.add_argument("--null-runs", type=int, default=500)
    parser.add_argument("--power-runs", type=int, default=200)
    parser.add_argument("--out", default="stats_calibration", help="name, or a path to .json")
    args = parser.parse_args(argv)
    null_runs, power_runs = (30, 12) if args.quick else (args.null_runs, args.power_runs)
    conf = OmegaConf.to_container(CONFIG.stats, resolve=True)
    # fewer relabellings and resamples than analyze's default keep 3,600 data sets within
    # minutes on 2 cores: Monte Carlo p stays valid at any count, only coarser
    settings = {
        "alpha": conf["alpha"], "alternative": conf["alternative"],
        "confidence": conf["confidence"], "min_units": conf["min_units"],
        "permutations": 499 if args.quick else 1999,
        "resamples": 500 if args.quick else 1000,
    }  # fmt: skip
    start = time.perf_counter()
    null = [
        run_scenario(k, {}, null_runs, seed=index, settings=settings)
        for index, k in enumerate(KAPPAS[:2] if args.quick else KAPPAS)
    ]
    planted = [
        run_scenario(3.0, {g: s * lam for g, s in SIGNS.items()}, power_runs, 100 + i, settings)
        for i, lam in enumerate(STRENGTHS)
    ]
    interaction = [
        run_scenario(3.0, {"400_4": lam}, power_runs, 200 + i, settings)
        for i, lam in enumerate(STRENGTHS)
    ]
    seconds = time.perf_counter() - start
    report(null, planted, interaction, settings["alpha"])
    path = write_results(
        args.out,
        {
            "machine": machine_info(),
            "settings": {**settings, "images_per_condition": IMAGES_PER_CONDITION,
                         "null_runs": null_runs, "power_runs": power_runs},
            "seconds": seconds,
            "null": null,
            "planted": planted,
            "interaction": interaction,
        },
    )  # fmt: skip
    print(f"{seconds:.0f} s; {path}")
    return path


def fmt_rate(r: dict[str, float]) -> str:
    """'0.048 [0.031, 0.071]'."""
    return f"{r['rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


def report(null: list[dict], planted: list[dict], interaction: list[dict], alpha: float) -> None:
    """The tables of the README: null rates, family-wise rates, power, coverage."""
    print(f"null, level {alpha:g}: share of runs with raw p <= alpha (pooled per kind), 95 % CI")
    for result in null:
        parts = [
            f"{k}: {fmt_rate(pooled(result, 'raw_significant', v))}"
            for k, v in kinds(result).items()
        ]
        print(f"  kappa {result['kappa']:g}: " + "; ".join(parts))
    print("null: family-wise error (any Holm-significant claim in the family)")
    for result in null:
        parts = [f"{f}: {fmt_rate(r)}" for f, r in result["family_any_significant"].items()]
        print(f"  kappa {result['kappa']:g}: " + "; ".join(parts))
    print("null: 95 % interval coverage of the true effect (0)")
    for result in null:
        parts = [
            f"{k}: {fmt_rate(pooled(result, 'ci_coverage', v))}" for k, v in kinds(result).items()
        ]
        print(f"  kappa {result['kappa']:g}: " + "; ".join(parts))
    print("planted (kappa 3): Holm-significant with the right direction, pooled over grids")
    for result, lam in zip(planted, STRENGTHS, strict=True):
        groups = kinds(result)
        true_c = np.mean([abs(result["true_effect"][g]) for g in groups["aligned, grid"]])
        found = {k: pooled(result, "right_direction", groups[k]) for k in groups}
        cover = {k: pooled(result, "ci_coverage", groups[k]) for k in groups}
        print(
            f"  lambda {lam:g} (|true C| {true_c:.2f}): "
            f"aligned {fmt_rate(found['aligned, grid'])}; "
            f"differs {fmt_rate(found['differs vs empty'])}; coverage aligned "
            f"{fmt_rate(cover['aligned, grid'])}, differs {fmt_rate(cover['differs vs empty'])}; "
            f"flat plate called aligned {fmt_rate(result['holm_significant']['empty'])}"
        )
    print("planted in 400_4 only (kappa 3): 2 x 2 effects found with the right direction")
    for result, lam in zip(interaction, STRENGTHS, strict=True):
        parts = [
            f"{k} (true {result['true_effect'][k]:+.2f}) {fmt_rate(result['right_direction'][k])}, "
            f"coverage {fmt_rate(result['ci_coverage'][k])}"
            for k in (HEIGHT, SPACING, INTERACTION)
        ]
        print(f"  lambda {lam:g}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
