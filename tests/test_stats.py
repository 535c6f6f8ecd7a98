"""Uniformity and between-group tests: hand-computable cases, then synthetic plates with truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from neuroseg.analysis.grid import grid_angle_deg
from neuroseg.analysis.orientation import fold_relative_deg, measure_axons
from neuroseg.analysis.stats import (
    STATS_COLUMNS,
    HypothesisTest,
    describe_group,
    holm,
    pairwise_ks,
    rayleigh_test,
    run_tests,
    summary_text,
)
from neuroseg.data.synth import make_image
from neuroseg.task import AXON, NEURON


def test_rayleigh_extremes() -> None:
    r, p = rayleigh_test(np.linspace(0, 2 * np.pi, 20, endpoint=False))
    assert r == pytest.approx(0.0, abs=1e-12) and p == pytest.approx(1.0)
    r, p = rayleigh_test(np.full(20, 0.3))
    assert r == pytest.approx(1.0) and p == pytest.approx(np.exp(9 - 41))


def test_holm_adjusts_within_each_test_family() -> None:
    results = [
        HypothesisTest("a", "x", "y", 5, 5, 0.1, 0.01),
        HypothesisTest("a", "x", "z", 5, 5, 0.1, 0.04),
        HypothesisTest("a", "y", "z", 5, 5, 0.1, 0.03),
        HypothesisTest("b", "x", "", 5, "", 0.1, 0.04),
        HypothesisTest("b", "y", "", 2, "", None, None),
    ]
    adjusted = [r.p_holm for r in holm(results)]
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert adjusted[3] == pytest.approx(0.04) and adjusted[4] is None


def test_too_few_samples_are_listed_not_tested() -> None:
    (result,) = pairwise_ks({"a": np.arange(3.0), "b": np.arange(30.0)}, "ks_segments", 5)
    assert (result.n_a, result.n_b, result.p_value) == (3, 30, None)
    assert result.row()["p_value"] == "" and set(result.row()) == set(STATS_COLUMNS)


def prediction_like(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A class map with the flaws of a predicted mask: thicker axons, gaps, speckles of axon."""
    axons = ndimage.binary_dilation(classes == AXON)
    axons &= ~ndimage.binary_dilation(rng.random(classes.shape) < 0.002, iterations=3)
    axons |= ndimage.binary_dilation(rng.random(classes.shape) < 0.0005, iterations=2)
    return np.where(classes == NEURON, NEURON, np.where(axons, AXON, 0)).astype(np.uint8)


def measure_group(
    condition: str, seed: int, images: int = 6, degrade: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Folded segment angles and direction-minus-reference offsets of synthetic images (truth)."""
    folded, offsets = [], []
    for number in range(images):
        rng = np.random.default_rng([seed, number])
        synth = make_image(rng, 384, 512, condition)
        grid = grid_angle_deg(synth.image)
        reference = grid.angle_deg if grid.found else 0.0
        mask = prediction_like(synth.classes, rng) if degrade else synth.classes
        directions = np.array([s.direction_deg for s in measure_axons(mask).segments])
        folded.append(fold_relative_deg(directions, reference))
        offsets.append(directions - reference)
    return np.concatenate(folded), np.concatenate(offsets)


@pytest.fixture(scope="module")
def plate_tests() -> dict[tuple[str, str, str], HypothesisTest]:
    groups = {
        "aligned": measure_group("200_4", seed=1),
        "random_a": measure_group("empty", seed=2),
        "random_b": measure_group("empty", seed=3),
        "aligned_predicted": measure_group("200_4", seed=1, degrade=True),
        "random_predicted": measure_group("empty", seed=2, degrade=True),
    }
    results = run_tests(
        {name: g[0] for name, g in groups.items()},
        {name: g[1] for name, g in groups.items()},
        {name: np.array([]) for name in groups},
    )
    return {(r.test, r.group_a, r.group_b): r for r in results}


def test_aligned_and_random_plates_differ(plate_tests: dict) -> None:
    for random in ("random_a", "random_b"):
        result = plate_tests["ks_segments", "aligned", random]
        assert result.n_a >= 30 and result.n_b >= 30
        assert result.p_holm < 0.01


def test_prediction_like_masks_give_the_same_answers(plate_tests: dict) -> None:
    assert plate_tests["ks_segments", "aligned_predicted", "random_predicted"].p_holm < 0.01
    assert plate_tests["ks_segments", "aligned", "aligned_predicted"].p_value > 0.05
    assert plate_tests["ks_uniform", "random_predicted", ""].p_value > 0.05


def test_two_random_groups_do_not_differ(plate_tests: dict) -> None:
    assert plate_tests["ks_segments", "random_a", "random_b"].p_value > 0.05


def test_uniformity_rejected_only_on_aligned(plate_tests: dict) -> None:
    for test in ("ks_uniform", "rayleigh_4fold"):
        assert plate_tests[test, "aligned", ""].p_value < 0.01
        assert plate_tests[test, "random_a", ""].p_value > 0.05
        assert plate_tests[test, "random_b", ""].p_value > 0.05


def test_summary_names_groups_and_verdicts() -> None:
    groups = [
        describe_group(
            "200_2", np.array([True, True]), np.array([100.0, 50.0]), np.array([0.9, 0.8]),
            np.array([1.0, 2.0, 30.0]), np.array([10.0, 10.0, 20.0]),
        ),
        describe_group(
            "empty", np.array([False]), np.array([0.0]), np.array([np.nan]),
            np.array([]), np.array([]),
        ),
    ]  # fmt: skip
    assert groups[0].near_axis_fraction == pytest.approx(0.5)
    assert groups[0].mean_alignment == pytest.approx(0.85)
    assert groups[1].n_without_axons == 1 and groups[1].median_folded_deg is None
    results = [HypothesisTest("ks_segments", "200_2", "empty", 40, 50, 0.6, 1e-6, 1e-5)]
    text = summary_text(groups, results, alpha=0.01, near_axis_deg=10.0, notes=["1 duplicate"])
    assert "200_2 vs empty: SIGNIFICANT: p = 1e-06" in text
    assert "n = 40 vs 50" in text and "empty: 1 images (0 with grid, 1 without axons)" in text
    assert "1 duplicate" in text
