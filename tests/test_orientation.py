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
    length_weights,
    local_directions_deg,
    measure_axons,
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
