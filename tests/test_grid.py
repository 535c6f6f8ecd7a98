"""Grid angle and spacing recovered from synthetic lattices with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize

from benchmarks.grid_calibration import FLAT_KINDS, flat_plate
from neuroseg.analysis.grid import GridEstimate, grid_angle_deg
from neuroseg.analysis.spectrum import axis_angle_deg, rotate90
from neuroseg.data.sample_image import lattice, make_image
from neuroseg.task import NEURON


def angle_error_deg(found: float, truth: float) -> float:
    """Smallest difference of two lattice angles on the 90-degree circle."""
    return abs((found - truth + 45.0) % 90.0 - 45.0)


def dot_lattice(shape: tuple[int, int], angle_deg: float, spacing_px: float) -> np.ndarray:
    """(H, W) uint8 Gaussian dots whose rows step (row, col) = s (-sin a, cos a), as on screen."""
    a = np.radians(angle_deg)
    axis = spacing_px * np.array([-np.sin(a), np.cos(a)])  # CCW as displayed: up is -row
    other = spacing_px * np.array([np.cos(a), np.sin(a)])  # axis turned by 90 degrees
    reach = int(np.hypot(*shape) / spacing_px) + 2
    i, j = np.meshgrid(np.arange(-reach, reach), np.arange(-reach, reach))
    centres = np.array(shape) / 2 + i.reshape(-1, 1) * axis + j.reshape(-1, 1) * other
    image = np.zeros(shape, np.float64)
    inside = (centres >= 4).all(1) & (centres < np.array(shape) - 5).all(1)
    for row, col in centres[inside]:
        r, c = int(row), int(col)
        rows, cols = np.mgrid[r - 3 : r + 4, c - 3 : c + 4]
        patch = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * 1.2**2))
        image[rows, cols] = np.maximum(image[rows, cols], patch)
    ramp = np.linspace(0.3, 0.6, shape[1])[None, :]  # uneven light
    return np.round(255 * (ramp + 0.3 * image)).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("angle_deg", [0.0, 0.3, 17.5, 30.0, 45.0, 61.2, 89.95])
def test_hand_made_lattice_angle_counter_clockwise(angle_deg: float) -> None:
    found = grid_angle_deg(dot_lattice((256, 320), angle_deg, 12.0))
    assert found.found
    assert angle_error_deg(found.angle_deg, angle_deg) < 0.2
    assert 0.0 <= found.angle_deg < 90.0
    assert found.spacing_px == pytest.approx(12.0, abs=0.2)


def test_mirrored_lattice_gives_mirrored_angle() -> None:
    # Flipping rows turns a counter-clockwise angle a into -a (= 90 - a on the lattice circle).
    image = dot_lattice((256, 320), 20.0, 12.0)
    assert angle_error_deg(grid_angle_deg(image[::-1]).angle_deg, 70.0) < 0.5


@pytest.mark.parametrize("condition", ["200_2", "200_4", "400_2", "400_4"])
@pytest.mark.parametrize("seed", [0, 1])
def test_synth_grid_within_two_degrees(condition: str, seed: int) -> None:
    synth = make_image(np.random.default_rng([seed, 11]), 768, 1024, condition)
    found = grid_angle_deg(synth.image)
    assert found.found, found
    assert angle_error_deg(found.angle_deg, synth.grid_angle_deg) < 2.0
    assert found.spacing_px == pytest.approx(synth.grid_spacing_px, rel=0.03)


@pytest.mark.slow
def test_synth_grid_full_size_fine_grid() -> None:
    synth = make_image(np.random.default_rng(5), 1536, 2048, "200_2")
    found = grid_angle_deg(synth.image)
    assert angle_error_deg(found.angle_deg, synth.grid_angle_deg) < 2.0
    assert found.spacing_px == pytest.approx(10.0, rel=0.03)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_plate_has_no_grid(seed: int) -> None:
    synth = make_image(np.random.default_rng([seed, 12]), 768, 1024, "empty")
    found = grid_angle_deg(synth.image)
    assert found == GridEstimate(None, None, found.confidence)
    assert not found.found
    assert 0 < found.confidence < 50.0


def test_sixteen_bit_and_rgb_images() -> None:
    synth = make_image(np.random.default_rng(3), 384, 512, "400_4", bit_depth=16)
    gray = grid_angle_deg(synth.image)
    rgb = grid_angle_deg(np.repeat((synth.image // 257).astype(np.uint8)[..., None], 3, -1))
    assert angle_error_deg(gray.angle_deg, synth.grid_angle_deg) < 2.0
    assert angle_error_deg(rgb.angle_deg, synth.grid_angle_deg) < 2.0


def test_uniform_image_has_no_grid() -> None:
    assert not grid_angle_deg(np.full((128, 160), 100, np.uint8)).found


def test_too_small_for_spacing_band_raises() -> None:
    with pytest.raises(ValueError, match="max_spacing_px"):
        grid_angle_deg(np.zeros((8, 8), np.uint8), min_spacing_px=40.0, max_spacing_px=60.0)


def test_reciprocal_vector_helpers() -> None:
    # A wave vector pointing up on screen (negative row frequency) is an axis at 90 = 0 mod 90.
    assert axis_angle_deg(np.array([-0.1, 0.0])) == pytest.approx(0.0)
    assert axis_angle_deg(np.array([-0.1, 0.1])) == pytest.approx(45.0)
    assert np.allclose(rotate90(np.array([0.0, 0.1])), [-0.1, 0.0])  # x axis -> up


def faint_lattice(seed: int, spacing_px: float, contrast: float) -> tuple[np.ndarray, float]:
    """(uint8 384x512 flat plate with a faint pillar lattice outside its cells, lattice angle)."""
    rng = np.random.default_rng(seed)
    synth = make_image(rng, 384, 512, "empty")
    angle = float(rng.uniform(0, 90))
    pillars = lattice((384, 512), angle, spacing_px, rng.uniform(0, 1, 2))
    gray = synth.image / 255.0 + contrast * pillars * (synth.classes != NEURON)
    return np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8), angle


def shipped_grid() -> dict[str, float]:
    """conf/analyze.yaml's grid settings, as analyze passes them."""
    with initialize(version_base="1.3", config_path="../conf"):
        return dict(compose("analyze", overrides=["images=."]).grid)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_spacing_finds_a_faint_lattice_the_wide_search_misses(seed: int) -> None:
    image, angle = faint_lattice(seed, 20.0, 0.015)
    settings = shipped_grid()
    wide = grid_angle_deg(image, **settings)
    near = grid_angle_deg(image, 20.0, **settings)
    assert not wide.found
    assert near.found and near.confidence > wide.confidence
    assert angle_error_deg(near.angle_deg, angle) < 1.0
    assert near.spacing_px == pytest.approx(20.0, rel=0.03) and near.spacing_mismatch is False


def test_spacing_off_the_condition_is_flagged() -> None:
    synth = make_image(np.random.default_rng(4), 384, 512, "400_4")  # 20 px pillars
    filed_as_2um = grid_angle_deg(synth.image, 10.0)
    assert filed_as_2um.spacing_mismatch is True
    assert filed_as_2um.disagreeing_spacing_px == pytest.approx(20.0, rel=0.03)
    assert angle_error_deg(filed_as_2um.angle_deg, synth.grid_angle_deg) < 2.0
    right = grid_angle_deg(synth.image, 20.0)
    assert right.spacing_mismatch is False and right.disagreeing_spacing_px is None
    assert grid_angle_deg(synth.image).spacing_mismatch is None  # nothing expected


@pytest.mark.parametrize("kind", FLAT_KINDS)
def test_flat_plates_stay_below_both_thresholds(kind: str) -> None:
    settings = shipped_grid()
    rng = np.random.default_rng([7, FLAT_KINDS.index(kind)])
    for _ in range(2):
        image = flat_plate(rng, (384, 512), kind)
        assert grid_angle_deg(image, **settings).confidence < settings["min_confidence"] / 2
        for spacing_px in (10.0, 20.0):
            near = grid_angle_deg(image, spacing_px, **settings)
            assert not near.found
            assert near.confidence < settings["expected_min_confidence"]
