"""The realism benchmark's measurements, on fields whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.realism import gray_stats, lattice_stats, spread, stroke_widths
from neuroseg.data.lab_surface import pillar_lattice


def test_gray_stats_of_a_flat_field_and_of_a_checkerboard() -> None:
    flat = np.full((64, 64), 100, np.uint8)
    assert gray_stats(flat) == pytest.approx({"gray_mean": 100, "gray_std": 0, "highpass_std": 0})
    board = np.where((np.indices((64, 64)).sum(0) % 2) == 0, 90, 110).astype(np.uint8)
    stats = gray_stats(board)
    assert stats["gray_std"] == pytest.approx(10) and stats["highpass_std"] == pytest.approx(
        10, abs=0.5
    )
    assert gray_stats(board.astype(np.uint16) * 257)["gray_mean"] == pytest.approx(100)


def test_stroke_widths_read_a_band_and_a_disk() -> None:
    band = np.zeros((80, 120), bool)
    band[30:50, 10:110] = True  # 20 px wide
    assert np.median(stroke_widths(band)) == pytest.approx(20, abs=1)
    assert stroke_widths(np.zeros((8, 8), bool)).size == 0


def test_lattice_stats_find_the_period_and_its_diagonal() -> None:
    dots = pillar_lattice((256, 256), 20.0, 13.08, 4.0, np.zeros(2))
    image = np.round(110 + 30 * dots).astype(np.uint8)
    stats = lattice_stats(image)
    assert stats["period_px"] == pytest.approx(13.08, abs=0.1)
    assert stats["angle_deg"] == pytest.approx(20.0, abs=0.5)
    assert stats["diagonal_px"] == pytest.approx(13.08 / np.sqrt(2), abs=0.1)
    assert stats["diagonal_power"] > 10
    assert lattice_stats(np.full((128, 128), 100, np.uint8))["period_px"] is None


def test_spread_skips_missing_values() -> None:
    rows = [{"x": 1.0}, {"x": None}, {"x": 3.0}, {}]
    assert spread(rows, "x") == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 2}
    assert spread(rows, "y")["n"] == 0
