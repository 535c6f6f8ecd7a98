"""Per-group description and the summary; image-level claims on synthetic plates with truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from neuroseg.analysis.conclusions import Claim, ImageRecord, conclude
from neuroseg.analysis.grid import grid_angle_deg
from neuroseg.analysis.orientation import alignment_index, measure_axons
from neuroseg.analysis.settings import Condition
from neuroseg.analysis.stats import STATS_COLUMNS, describe_group, stats_rows, summary_text
from neuroseg.data.sample_image import make_image
from neuroseg.task import AXON, NEURON


def prediction_like(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A class map with the flaws of a predicted mask: thicker axons, gaps, speckles of axon."""
    axons = ndimage.binary_dilation(classes == AXON)
    axons &= ~ndimage.binary_dilation(rng.random(classes.shape) < 0.002, iterations=3)
    axons |= ndimage.binary_dilation(rng.random(classes.shape) < 0.0005, iterations=2)
    return np.where(classes == NEURON, NEURON, np.where(axons, AXON, 0)).astype(np.uint8)


def measure_group(
    condition: str, group: str, seed: int, images: int = 8, degrade: bool = False
) -> list[ImageRecord]:
    """Per-image records of synthetic images (truth), as analyze makes them from masks."""
    records = []
    for number in range(images):
        rng = np.random.default_rng([seed, number])
        synth = make_image(rng, 384, 512, condition)
        grid = grid_angle_deg(synth.image)
        reference = grid.angle_deg if grid.found else 0.0
        mask = prediction_like(synth.classes, rng) if degrade else synth.classes
        axons = measure_axons(mask)
        c = alignment_index(axons.directions_deg, reference, axons.weights_px)
        records.append(ImageRecord(f"{number}.tif", group, c, axons.length_px, len(axons.segments)))
    return records


@pytest.fixture(scope="module")
def plate_claims() -> dict[tuple[str, str], Claim]:
    records = (
        measure_group("200_4", "aligned", seed=1)
        + measure_group("empty", "random", seed=2)
        + measure_group("200_4", "aligned_predicted", seed=1, degrade=True)
    )
    conditions = {
        "aligned": Condition(height_nm=200, spacing_um=4.0),
        "aligned_predicted": Condition(height_nm=200, spacing_um=4.0),
        "random": Condition(height_nm=None, spacing_um=None),
    }
    return {(c.group, c.reference): c for c in conclude(records, conditions)}


def test_aligned_plates_read_aligned_along_the_axes(plate_claims: dict) -> None:
    for group in ("aligned", "aligned_predicted"):
        claim = plate_claims[group, ""]
        assert claim.significant and claim.direction == "axes" and claim.n_images == 8
        assert claim.effect > 0.5 and claim.ci[0] > 0.3
        assert plate_claims[group, "random"].significant


def test_random_plate_reads_no_preference(plate_claims: dict) -> None:
    claim = plate_claims["random", ""]
    assert not claim.significant and claim.ci[0] < 0 < claim.ci[1]


def test_prediction_like_masks_give_the_same_answers(plate_claims: dict) -> None:
    truth, predicted = plate_claims["aligned", ""], plate_claims["aligned_predicted", ""]
    assert predicted.effect == pytest.approx(truth.effect, abs=0.15)
    rows = [t.row() for t in stats_rows(list(plate_claims.values()))]
    assert all(set(r) == set(STATS_COLUMNS) for r in rows) and len(rows) == 5


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
    claims = [
        Claim("aligned", "aligned", "200_2", "", "image", 8, 8, 0.42, (0.3, 0.55), 0.0078, "t",
              0.031, True),
        Claim("differs", "differs", "200_2", "empty", "image", 9, 9, 0.4, (0.2, 0.6), 0.0001,
              "t", 0.0004, True),
    ]  # fmt: skip
    text = summary_text(groups, claims, alpha=0.05, confidence=0.95, near_axis_deg=10.0,
                        notes=["1 duplicate"])  # fmt: skip
    assert "200_2: mean C +0.42 (95% CI +0.30 to +0.55): axons run along the axes" in text
    assert "Holm-adjusted p = 0.031; 8 images" in text
    assert "200_2 - empty: difference in mean C +0.40" in text and "Holm-adjusted p < 0.001" in text
    assert "empty: 1 images (0 with grid, 1 without axons)" in text
    assert text.index("mean C +0.42") < text.index("Description, not tests")
    assert "1 duplicate" in text
