"""Permutation tests, bootstrap intervals and Holm's adjustment on a few numbers per unit.

The units are images (or plates): at the lab's scale 3-10 per group, so the tests are exact
where the number of relabellings is small enough to enumerate and seeded Monte Carlo otherwise.
A Monte Carlo p counts the observed labelling among the draws, (1 + hits) / (1 + draws), which
keeps it valid (never below 1 / (1 + draws)). Every function takes plain arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations, product
from math import comb

import numpy as np
from scipy import stats

ALTERNATIVES = ("two-sided", "greater", "less")
# relative tolerance for ties: a relabelling that reproduces the observed statistic up to
# rounding counts as at least as extreme (sums in another order differ in the last bits)
TIE = 1e-9


@dataclass(frozen=True)
class PermutationTest:
    """A permutation p-value, whether it enumerated every relabelling, and how many it used."""

    p: float
    exact: bool
    draws: int


def p_from_draws(observed: float, null: np.ndarray, alternative: str, exact: bool) -> float:
    """Share of relabellings at least as extreme as `observed` (two-sided: in absolute value)."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"unknown alternative {alternative!r}; choose one of {ALTERNATIVES}")
    tol = TIE * max(1.0, abs(observed))
    if alternative == "two-sided":
        hits = int(np.count_nonzero(np.abs(null) >= abs(observed) - tol))
    elif alternative == "greater":
        hits = int(np.count_nonzero(null >= observed - tol))
    else:
        hits = int(np.count_nonzero(null <= observed + tol))
    return hits / null.size if exact else (1 + hits) / (1 + null.size)


@lru_cache(maxsize=32)
def all_signs(n: int) -> np.ndarray:
    """Every +-1 pattern of length n, (2**n, n) float64; the first row is all +1 (identity)."""
    return np.array(list(product((1.0, -1.0), repeat=n)))


@lru_cache(maxsize=32)
def all_subsets(n: int, k: int) -> np.ndarray:
    """Every k-subset of range(n) as rows of indices, (comb(n, k), k) int64."""
    return np.array(list(combinations(range(n), k)), dtype=np.int64).reshape(-1, k)


def sign_flip_test(
    values: np.ndarray,
    alternative: str = "two-sided",
    permutations: int = 9999,
    rng: np.random.Generator | None = None,
) -> PermutationTest:
    """Test mean 0 by flipping signs: exact over all 2**n patterns when that is <= permutations.

    Valid when each value is symmetric about 0 under the null: rotating an image's axons by
    45 deg against its grid flips the sign of its alignment C, so "no grid effect" gives that.
    """
    x = np.asarray(values, dtype=np.float64)
    exact = 2**x.size <= permutations
    if exact:
        signs = all_signs(x.size)
    else:
        rng = rng if rng is not None else np.random.default_rng(0)
        signs = rng.choice((-1.0, 1.0), size=(permutations, x.size))
    null = signs @ x / x.size
    p = p_from_draws(float(x.mean()), null, alternative, exact)
    return PermutationTest(p, exact, null.size)


def two_sample_test(
    a: np.ndarray,
    b: np.ndarray,
    alternative: str = "two-sided",
    permutations: int = 9999,
    rng: np.random.Generator | None = None,
) -> PermutationTest:
    """Test mean(a) - mean(b) = 0 by relabelling; exact when comb(n_a + n_b, n_a) is small."""
    x = np.concatenate([np.asarray(a, np.float64), np.asarray(b, np.float64)])
    k, n = len(a), x.size
    exact = comb(n, k) <= permutations
    if exact:
        chosen = all_subsets(n, k)
    else:
        rng = rng if rng is not None else np.random.default_rng(0)
        chosen = np.argsort(rng.random((permutations, n)), axis=1)[:, :k]
    sums = x[chosen].sum(axis=1)
    null = sums / k - (x.sum() - sums) / (n - k)
    observed = float(x[:k].mean() - x[k:].mean())
    return PermutationTest(p_from_draws(observed, null, alternative, exact), exact, null.size)


def cell_contrast(values: np.ndarray, cells: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_c weights[c] * mean of values in cell c, for one labelling (n,) or many (draws, n)."""
    cells = np.atleast_2d(cells)
    total = np.zeros(cells.shape[0])
    for c, w in enumerate(weights):
        member = cells == c
        total += w * (member @ values) / member.sum(axis=1)
    return total


def stratified_test(
    values: np.ndarray,
    cells: np.ndarray,
    weights: np.ndarray,
    strata: np.ndarray,
    permutations: int = 9999,
    rng: np.random.Generator | None = None,
) -> PermutationTest:
    """Two-sided test of a cell-mean contrast, shuffling cell labels only within each stratum.

    A 2 x 2 main effect (height) is tested by shuffling height within each spacing: exact under
    "height changes nothing at either spacing", whatever spacing does. Seeded Monte Carlo.
    """
    values = np.asarray(values, np.float64)
    rng = rng if rng is not None else np.random.default_rng(0)
    shuffled = np.empty((permutations, values.size), dtype=np.int64)
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        order = np.argsort(rng.random((permutations, members.size)), axis=1)
        shuffled[:, members] = cells[members][order]
    observed = float(cell_contrast(values, cells, weights)[0])
    null = cell_contrast(values, shuffled, weights)
    return PermutationTest(p_from_draws(observed, null, "two-sided", False), False, permutations)


def residual_test(
    values: np.ndarray,
    cells: np.ndarray,
    weights: np.ndarray,
    reduced_design: np.ndarray,
    permutations: int = 9999,
    rng: np.random.Generator | None = None,
) -> PermutationTest:
    """Two-sided Freedman-Lane test of a cell-mean contrast that no relabelling can isolate.

    Fits the reduced model (n, p) without the tested term, shuffles its residuals, adds them
    back to its fit and recomputes the contrast: the way to test a 2 x 2 interaction by
    permutation (approximate, not exact; its calibration is measured in the benchmark).
    reduced_design (n, p) holds the reduced model's columns (intercept and main effects).
    """
    values = np.asarray(values, np.float64)
    rng = rng if rng is not None else np.random.default_rng(0)
    coef, _, rank, _ = np.linalg.lstsq(reduced_design, values, rcond=None)
    fitted = reduced_design @ coef
    # residuals are smaller than the errors (n - p of n degrees of freedom); unscaled, the
    # shuffled contrasts spread too little and the test rejects too often (7-8 % at 5 %)
    residuals = (values - fitted) * np.sqrt(values.size / max(values.size - rank, 1))
    order = np.argsort(rng.random((permutations, values.size)), axis=1)
    draws = fitted + residuals[order]  # (permutations, n)
    member = cells[:, None] == np.arange(len(weights))  # (n, cells) one-hot
    null = (draws @ member / member.sum(axis=0)) @ weights
    observed = float(cell_contrast(values, cells, weights)[0])
    return PermutationTest(p_from_draws(observed, null, "two-sided", False), False, permutations)


def bootstrap_ci(
    samples: Sequence[np.ndarray],
    weights: Sequence[float],
    level: float = 0.95,
    resamples: int = 2000,
    rng: np.random.Generator | None = None,
) -> tuple[float, float] | None:
    """Expanded percentile bootstrap interval of sum_k weights[k] * mean(samples[k]).

    Each sample is resampled with replacement on its own. The plain percentile interval is too
    narrow with 3-10 values (it acts as if the variance were known); Hesterberg's expansion
    fixes that: residuals are scaled by sqrt(n / (n - 1)) and the percentiles widened to the
    t quantile (Welch-Satterthwaite degrees of freedom). None when a sample has < 2 values.
    """
    samples = [np.asarray(s, np.float64) for s in samples]
    if any(s.size < 2 for s in samples):
        return None
    rng = rng if rng is not None else np.random.default_rng(0)
    estimate = sum(w * s.mean() for w, s in zip(weights, samples, strict=True))
    parts = np.zeros(resamples)
    variances = []
    for w, s in zip(weights, samples, strict=True):
        n = s.size
        spread = (s - s.mean()) * np.sqrt(n / (n - 1))
        picks = rng.integers(0, n, size=(resamples, n))
        parts += w * (s.mean() + spread[picks].mean(axis=1))
        variances.append((w * w * s.var(ddof=1) / n, n))
    total = sum(v for v, _ in variances)
    if total == 0:
        return float(estimate), float(estimate)
    df = total**2 / sum(v * v / (n - 1) for v, n in variances)
    tail = stats.norm.cdf(-stats.t.ppf(0.5 + level / 2, df))  # expanded one-sided tail
    low, high = np.quantile(parts, [tail, 1 - tail])
    return float(low), float(high)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (a family of m tests)."""
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
