"""Painted labels -> masks: hand-computable cases, JPEG copies against the truth, bad input."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from neuroseg import io
from neuroseg.data.labels import class_mask, close_mask, mask_from_palette, neuron_mask
from neuroseg.data.sample_tree import make_dataset
from neuroseg.data.settings import PaletteSettings, read_group_file

REPO = Path(__file__).resolve().parents[1]
M, B, R, G = (255, 51, 255), (30, 230, 255), (250, 77, 70), (120, 120, 120)


@pytest.fixture(scope="module")
def palette() -> dict:
    return OmegaConf.to_container(read_group_file(REPO / "conf" / "palette" / "qlab.yaml"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_palette_schema_and_shipped_keys_are_the_function_arguments(palette: dict) -> None:
    arguments = set(inspect.signature(mask_from_palette).parameters) - {"rgb"}
    assert {f.name for f in fields(PaletteSettings)} == arguments == set(palette)


def test_four_by_four_palette_image(palette: dict) -> None:
    rgb = np.array([[M, M, G, G], [M, R, R, G], [B, R, G, G], [G, G, R, R]], np.uint8)
    expected = np.array([[1, 1, 0, 0], [1, 2, 2, 0], [1, 2, 0, 0], [0, 0, 2, 2]], np.uint8)
    np.testing.assert_array_equal(class_mask(rgb, palette), expected)
    np.testing.assert_array_equal(neuron_mask(rgb, palette), (expected == 1).astype(np.uint8))


def test_closing_fills_a_gap_and_neurons_win(palette: dict) -> None:
    rgb = np.array([[G, G, G, G, G], [R, R, M, R, R], [G, G, G, G, G]], np.uint8)
    rgb[1, 0] = G  # a one-pixel gap at the border stays open: closing needs paint on both sides
    closed = {**palette, "closing_footprint": "disk", "closing_radius": 1}
    expected = np.array([[0, 0, 0, 0, 0], [0, 2, 1, 2, 2], [0, 0, 0, 0, 0]], np.uint8)
    np.testing.assert_array_equal(class_mask(rgb, closed), expected)
    line = np.array([[1, 1, 0, 1, 1]], bool)
    np.testing.assert_array_equal(close_mask(line, "disk", 1), np.ones((1, 5), bool))
    np.testing.assert_array_equal(close_mask(line, "star", 0), line)


@pytest.fixture(scope="module")
def small_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labels") / "raw"
    return make_dataset(out, per_condition=2, height=192, width=256, duplicates=0, seed=3)


def test_jpeg_copies_of_small_images_match_the_truth(small_raw: Path, palette: dict) -> None:
    scores = []
    for truth_path in sorted((small_raw / "truth").glob("*/*.png")):
        condition, number = truth_path.parent.name, truth_path.stem
        truth = io.read_image(truth_path)
        labels = neuron_mask(
            io.read_rgb(small_raw / "labels" / condition / f"label_{number}.jpg"), palette
        )
        axons = class_mask(
            io.read_rgb(small_raw / "labels_axons" / condition / f"label_{number}.jpg"), palette
        )
        assert set(np.unique(labels)) <= {0, 1} and set(np.unique(axons)) <= {0, 1, 2}
        scores.append((iou(labels == 1, truth == 1), iou(axons == 2, truth == 2)))
    neurons, axons = np.array(scores).T
    assert len(scores) == 10
    assert neurons.mean() >= 0.97 and neurons.min() >= 0.95
    assert axons.mean() >= 0.93 and axons.min() >= 0.9


def test_jpeg_copy_of_a_full_size_image_matches_the_truth(tmp_path: Path, palette: dict) -> None:
    raw = make_dataset(
        tmp_path / "raw", per_condition=1, duplicates=0, seed=5, conditions=("200_2",)
    )
    truth = io.read_image(raw / "truth" / "200_2" / "1.png")
    neurons = neuron_mask(io.read_rgb(raw / "labels" / "200_2" / "label_1.jpg"), palette)
    classes = class_mask(io.read_rgb(raw / "labels_axons" / "200_2" / "label_1.jpg"), palette)
    assert iou(neurons == 1, truth == 1) >= 0.97
    assert iou(classes == 1, truth == 1) >= 0.97
    assert iou(classes == 2, truth == 2) >= 0.93


def test_gray_label_is_rejected_naming_the_file(tmp_path: Path, palette: dict) -> None:
    path = tmp_path / "label_7.jpg"
    io.write_jpeg(path, np.full((8, 8), 100, np.uint8))
    with pytest.raises(ValueError, match="label_7.jpg"):
        neuron_mask(io.read_rgb(path), palette)


def test_bad_palette_and_arguments_list_the_choices(palette: dict) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    bad_class = {**palette, "colors": {"dendrite": {"rgb": [0, 255, 0], "class_name": "dendrites"}}}
    with pytest.raises(KeyError, match=r"'dendrites'.*choose one of \['axons', 'neurons'\]"):
        class_mask(rgb, bad_class)
    bad_rgb = {**palette, "colors": {"axon": {"rgb": [250, 77], "class_name": "axons"}}}
    with pytest.raises(ValueError, match="'axon'"):
        class_mask(rgb, bad_rgb)
    with pytest.raises(KeyError, match="choose one of"):
        class_mask(rgb, {**palette, "closing_footprint": "cross", "closing_radius": 2})
    with pytest.raises(ValueError, match="expected"):
        class_mask(rgb.astype(np.float32), palette)
    with pytest.raises(KeyError, match=r"palette.luma_tolerance: .*the palette keys are \["):
        neuron_mask(rgb, {**palette, "luma_tolerance": 9})
    with pytest.raises(ValueError, match=r"palette.luma_tol: .*missing mandatory value"):
        neuron_mask(rgb, {k: v for k, v in palette.items() if k != "luma_tol"})
    with pytest.raises(ValueError, match=r"palette.reach_px: Value 'near'"):
        neuron_mask(rgb, {**palette, "reach_px": "near"})
    with pytest.raises(ValueError, match=r"palette.colors: empty"):
        neuron_mask(rgb, {**palette, "colors": {}})
    with pytest.raises(ValueError, match="colors: empty"):
        neuron_mask(rgb, {**palette, "colors": {}})
