"""predict's axon length against hand-drawn axons of known length, and against analyze's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize
from scipy import ndimage
from skimage.draw import line

from neuroseg.analysis import measure as analysis
from neuroseg.analysis.orientation import measure_axons
from neuroseg.analysis.sources import Source
from neuroseg.morphometrics import measure, skeleton_length_px
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


def analyze_length_px(mask: np.ndarray, tmp_path: Path) -> float:
    """analyze's per_image axon_length_px for `mask`, through its own measure and shipped config."""
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("analyze", overrides=[f"output={tmp_path}", f"images={tmp_path}"])
    source = Source("a.png", tmp_path / "a.png", tmp_path / "a_mask.png", "g")
    image = np.zeros(mask.shape, np.uint8)
    return float(analysis.measure(source, image, mask, cfg).row["axon_length_px"])


@pytest.mark.parametrize("width_px", [1, 3])
@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 45.0, 60.0, 90.0, 120.0])
def test_straight_axon_length(angle_deg: float, width_px: int) -> None:
    mask = axon_mask(angle_deg, width_px)
    length = measure(mask, num_classes=3, min_neuron_px=4)["axon_skeleton_length_px"]
    assert length == pytest.approx(LENGTH_PX, rel=0.03)
    assert length == round(measure_axons(mask).length_px, 1)


def test_oblique_axon_no_longer_counted_in_pixels() -> None:
    mask = axon_mask(45.0, 1)
    pixels = int((mask == AXON).sum())  # the old figure: skeleton pixels, 72 for 100 px
    assert skeleton_length_px(mask == AXON) > 1.3 * pixels


def test_predict_and_analyze_agree(tmp_path: Path) -> None:
    mask = axon_mask(30.0, 3)
    mask |= axon_mask(120.0, 1)  # a crossing: branch points and short pieces count too
    mask[40:44, 100:103] = AXON  # a stub below analyze's min_segment_px
    mask[4:20, 4:20] = NEURON
    row = measure(mask, num_classes=3, min_neuron_px=4)
    assert row["axon_skeleton_length_px"] == analyze_length_px(mask, tmp_path)
    assert row["axon_skeleton_length_px"] > 2 * LENGTH_PX


def test_no_axons_or_binary_model() -> None:
    mask = np.zeros((32, 64), np.uint8)
    assert measure(mask, num_classes=3, min_neuron_px=4)["axon_skeleton_length_px"] == 0.0
    assert measure(mask, num_classes=2, min_neuron_px=4)["axon_skeleton_length_px"] == ""
