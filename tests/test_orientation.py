"""Axon skeleton lengths, local and segment directions, folding, on hand-drawn masks."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import line

from neuroseg.analysis.orientation import (
    alignment_index,
    axial_mean_deg,
    fold_relative_deg,
    junctions,
    lattice_offset_deg,
    length_weights,
    local_directions_deg,
    measure_axons,
    segment_offsets_deg,
    weighted_median,
)
from neuroseg.task import AXON, NEURON


def draw_axon(mask: np.ndarray, row: int, col: int, angle_deg: float, length_px: float) -> None:
    """Paint a 1-px axon from (row, col) at angle_deg counter-clockwise on screen (rows go up)."""
    a = np.radians(angle_deg)
    end_row = int(round(row - length_px * np.sin(a)))
    end_col = int(round(col + length_px * np.cos(a)))
    rows, cols = line(row, col, end_row, end_col)
    mask[rows, cols] = AXON


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 45.0, 90.0, 120.0, 163.0])
def test_single_axon_direction_and_length(angle_deg: float) -> None:
    mask = np.zeros((160, 160), np.uint8)
    draw_axon(mask, 80, 40 if angle_deg < 90 else 120, angle_deg, 70.0)
    measured = measure_axons(mask, min_segment_px=10.0)
    assert len(measured.segments) == 1
    segment = measured.segments[0]
    assert abs((segment.direction_deg - angle_deg + 90) % 180 - 90) < 1.0
    assert segment.length_px == pytest.approx(70.0, rel=0.05)
    assert measured.length_px == pytest.approx(70.0, rel=0.05)
    local = measured.directions_deg
    assert np.all(np.abs((local - angle_deg + 90) % 180 - 90) < 8.0)


def test_thick_axon_is_measured_along_its_centre_line() -> None:
    mask = np.zeros((64, 160), np.uint8)
    mask[30:35, 20:140] = AXON  # 5 px wide, 120 px long, horizontal
    measured = measure_axons(mask, min_segment_px=10.0)
    assert len(measured.segments) == 1
    assert measured.segments[0].direction_deg == pytest.approx(0.0, abs=1.0)
    assert 110 <= measured.length_px <= 122


def test_length_per_pixel_follows_direction() -> None:
    # One pixel per column along x, per diagonal step at 45 deg, per column at 30 deg.
    weights = length_weights(np.array([0.0, 90.0, 45.0, 135.0, 30.0]))
    assert weights == pytest.approx([1.0, 1.0, np.sqrt(2), np.sqrt(2), 1 / np.cos(np.pi / 6)])


def test_crossing_axons_split_into_four_segments_at_the_junction() -> None:
    mask = np.zeros((121, 121), np.uint8)
    mask[60, 10:111] = AXON
    mask[10:111, 60] = AXON
    assert junctions(mask == AXON).sum() == 1
    measured = measure_axons(mask, min_segment_px=20.0)
    directions = sorted(round(s.direction_deg) % 180 for s in measured.segments)
    assert directions == [0, 0, 90, 90]
    assert measured.too_short == 0
    assert sum(s.length_px for s in measured.segments) == pytest.approx(200 - 4 - 1, abs=1)


def test_short_pieces_are_counted_not_measured() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[10, 5:60] = AXON
    mask[40, 5:12] = AXON  # 7 px
    mask[50:55, 50:55] = NEURON  # neurons are not axons
    measured = measure_axons(mask, min_segment_px=15.0)
    assert len(measured.segments) == 1
    assert measured.too_short == 1
    assert measured.length_px == pytest.approx(55 + 7, abs=0.5)  # pixels along x


def test_mask_without_axons() -> None:
    measured = measure_axons(np.ones((32, 32), np.uint8) * NEURON)
    assert measured.segments == [] and measured.length_px == 0.0
    assert measured.directions_deg.shape == (0,)


def test_staircase_line_has_no_junctions() -> None:
    mask = np.zeros((80, 80), np.uint8)
    draw_axon(mask, 70, 5, 25.0, 70.0)
    assert junctions(mask == AXON).sum() == 0
    assert np.abs(local_directions_deg(mask == AXON, 7) - 25.0).max() < 8.0


@pytest.mark.parametrize(
    ("direction", "reference", "folded"),
    [(100.0, 10.0, 0.0), (55.0, 0.0, 35.0), (44.0, 0.0, 44.0), (-10.0, 0.0, 10.0),
     (179.0, 0.0, 1.0), (30.0, 75.0, 45.0), (60.0, 15.0, 45.0)],
)  # fmt: skip
def test_fold_relative_deg(direction: float, reference: float, folded: float) -> None:
    assert fold_relative_deg(np.array([direction]), reference)[0] == pytest.approx(folded)


def test_axial_mean_and_alignment() -> None:
    assert axial_mean_deg(np.array([170.0, 10.0])) % 180 == pytest.approx(0.0, abs=1e-9)
    assert axial_mean_deg(np.array([80.0, 100.0, 90.0])) == pytest.approx(90.0)
    assert axial_mean_deg(np.array([10.0, 50.0]), np.array([3.0, 1.0])) < 30.0
    assert axial_mean_deg(np.array([])) is None
    assert alignment_index(np.array([0.0, 90.0, 180.0]), 0.0) == pytest.approx(1.0)
    assert alignment_index(np.array([45.0, 135.0]), 0.0) == pytest.approx(-1.0)
    assert alignment_index(np.array([20.0]), 20.0) == pytest.approx(1.0)
    assert alignment_index(np.array([]), 0.0) is None


def polyline_mask(points: list[tuple[int, int]], shape: tuple[int, int] = (224, 224)) -> np.ndarray:
    """A 1-px axon through (row, col) corners, as a class mask."""
    mask = np.zeros(shape, np.uint8)
    for (r0, c0), (r1, c1) in zip(points, points[1:], strict=False):
        rows, cols = line(r0, c0, r1, c1)
        mask[rows, cols] = AXON
    return mask


def grid_relative(mask: np.ndarray, reference_deg: float = 0.0) -> tuple[float, float]:
    """(alignment C, largest segment angle to the grid) of a mask, as analyze measures them."""
    measured = measure_axons(mask, min_segment_px=10.0)
    offsets = measured.directions_deg - reference_deg
    per_segment = segment_offsets_deg(
        offsets, measured.weights_px, measured.segment_px, len(measured.segments)
    )
    alignment = alignment_index(measured.directions_deg, reference_deg, measured.weights_px)
    return alignment, float(np.abs(per_segment).max())


@pytest.mark.parametrize(
    ("points", "min_alignment"),
    [
        ([(200, 20), (200, 180)], 0.99),  # straight along x
        ([(200, 20), (200, 120), (100, 120)], 0.9),  # L: 100 px along x, then 100 px along y
        # Steps of 40 px: each corner bends the local direction over about 2 x 7 px.
        ([(200, 20), (200, 60), (160, 60), (160, 100), (120, 100), (120, 140), (80, 140)], 0.7),
    ],
    ids=["straight", "L", "staircase"],
)
def test_axons_that_turn_along_the_axes_read_aligned(
    points: list[tuple[int, int]], min_alignment: float
) -> None:
    mask = polyline_mask(points)
    alignment, worst_deg = grid_relative(mask)
    assert alignment > min_alignment
    assert worst_deg < 3.0  # one PCA line through the L would read 45 deg
    measured = measure_axons(mask, min_segment_px=10.0)
    folded = fold_relative_deg(measured.directions_deg, 0.0)
    assert weighted_median(folded, measured.weights_px) < 2.0


def test_l_shaped_segment_is_one_bent_piece() -> None:
    measured = measure_axons(polyline_mask([(200, 20), (200, 120), (100, 120)]), min_segment_px=10)
    assert len(measured.segments) == 1
    assert measured.segments[0].straightness < 0.2  # its mean direction is not a direction


def test_diagonal_axon_reads_anti_aligned() -> None:
    alignment, worst_deg = grid_relative(polyline_mask([(200, 20), (40, 180)]))
    assert alignment < -0.9
    assert worst_deg > 42.0


def test_random_walk_axons_read_unaligned_on_average() -> None:
    values = []
    for seed in range(16):
        rng = np.random.default_rng(seed)
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.2, 300))
        steps = np.stack([-np.sin(heading), np.cos(heading)], 1)
        path = (np.array([224.0, 224.0]) + np.cumsum(steps, axis=0)).round().astype(int)
        mask = np.zeros((448, 448), np.uint8)  # large enough that no walk reaches an edge
        mask[path[:, 0], path[:, 1]] = AXON
        values.append(grid_relative(mask)[0])
    assert abs(np.mean(values)) < 0.15
    assert np.std(values) > 0.1  # each walk has directions of its own, not a constant


def test_weighted_median_and_lattice_offset() -> None:
    assert weighted_median(np.array([1.0, 2.0, 30.0]), np.array([1.0, 1.0, 1.0])) == 2.0
    assert weighted_median(np.array([1.0, 30.0]), np.array([1.0, 3.0])) == 30.0
    assert weighted_median(np.array([]), np.array([])) is None
    assert lattice_offset_deg(np.array([0.0, 90.0, 180.0])) == pytest.approx(0.0, abs=1e-9)
    assert lattice_offset_deg(np.array([10.0, 100.0]), np.array([1.0, 1.0])) == pytest.approx(10)
    assert lattice_offset_deg(np.array([45.0])) == pytest.approx(45.0)
