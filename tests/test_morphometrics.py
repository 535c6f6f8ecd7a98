"""predict's axon length against hand-drawn axons of known length, and against analyze's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import line

from neuroseg.analysis.morphometrics import measure_mask, skeleton_length_px
from neuroseg.task import AXON, NEURON

LENGTH_PX = 100.0


def axon_mask(angle_deg: float, width_px: int) -> np.ndarray:
    """(128, 128) uint8 class map holding one straight axon of LENGTH_PX at angle_deg (rows up)."""
    mask = np.zeros((128, 128), np.uint8)
    a = np.radians(angle_deg)
    row, col = 112, 14 if angle_deg < 90 else 114
    rows, cols = line(
        row, col, round(row - LENGTH_PX * np.sin(a)), round(col + LENGTH_PX * np.cos(a))
    )
    axon = np.zeros(mask.shape, bool)
    axon[rows, cols] = True
    # A painted axon is a few px wide; its skeleton loses about a px at each end.
    if width_px > 1:  # iterations=0 would dilate until nothing changes
        axon = ndimage.binary_dilation(axon, iterations=(width_px - 1) // 2)
    mask[axon] = AXON
    return mask


@pytest.mark.parametrize("width_px", [1, 3])
@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 45.0, 60.0, 90.0, 120.0])
def test_straight_axon_length(angle_deg: float, width_px: int) -> None:
    mask = axon_mask(angle_deg, width_px)
    length = measure_mask(mask, num_classes=3, min_neuron_px=4)["axon_skeleton_length_px"]
    assert length == pytest.approx(LENGTH_PX, rel=0.03)


def test_oblique_axon_no_longer_counted_in_pixels() -> None:
    mask = axon_mask(45.0, 1)
    pixels = int((mask == AXON).sum())  # the old figure: skeleton pixels, 72 for 100 px
    assert skeleton_length_px(mask == AXON) > 1.3 * pixels


def test_crossing_axons_add_up_and_specks_are_not_neurons() -> None:
    mask = axon_mask(30.0, 3)
    mask[axon_mask(120.0, 1) == AXON] = AXON  # a crossing: both lengths count in full
    mask[4:20, 4:20] = NEURON
    mask[30:32, 120:122] = NEURON  # 4 px: below min_neuron_px=5
    row = measure_mask(mask, num_classes=3, min_neuron_px=5)
    assert row["axon_skeleton_length_px"] == pytest.approx(2 * LENGTH_PX, rel=0.05)
    assert row["neuron_count"] == 1 and row["neuron_area_px"] == 16 * 16 + 4


def test_no_axons_or_binary_model() -> None:
    mask = np.zeros((32, 64), np.uint8)
    assert measure_mask(mask, num_classes=3, min_neuron_px=4)["axon_skeleton_length_px"] == 0.0
    assert measure_mask(mask, num_classes=2, min_neuron_px=4)["axon_skeleton_length_px"] == ""
