"""Sample-data generator: truth consistent with the pictures, the raw tree contract, determinism."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize

from neuroseg import io
from neuroseg.data.sample_image import CONDITIONS, make_image, place_cells, trace_axons
from neuroseg.data.sample_tree import PAINT_RGB, TRUTH_COLUMNS, make_dataset, paint_label
from neuroseg.synth import synth

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_small_image_holds_cells_axons_and_grid_truth(condition: str) -> None:
    sample = make_image(np.random.default_rng(0), 192, 256, condition)
    assert sample.image.shape == sample.classes.shape == (192, 256)
    assert sample.image.dtype == np.uint8
    counts = np.bincount(sample.classes.ravel(), minlength=3)
    assert len(counts) == 3 and counts[1] > 200 and counts[2] > 100
    assert not (sample.clustered & (sample.classes != 1)).any()
    if condition == "empty":
        assert sample.grid_angle_deg is None and sample.grid_spacing_px is None
        assert sample.axon_mode == "random"
    else:
        assert 0 <= sample.grid_angle_deg < 90
        assert sample.grid_spacing_px == {"2": 10.0, "4": 20.0}[condition[-1]]
        assert sample.axon_mode == "aligned"


def test_cells_are_brighter_and_axons_darker_than_background() -> None:
    sample = make_image(np.random.default_rng(1), 192, 256, "400_4")
    image = sample.image.astype(float)
    background = np.median(image[sample.classes == 0])
    assert np.median(image[sample.classes == 1]) > background + 40
    assert np.median(image[sample.classes == 2]) < background - 15


def test_full_size_16_bit_uses_the_full_range() -> None:
    sample = make_image(np.random.default_rng(2), 1536, 2048, "200_2", bit_depth=16)
    assert sample.image.dtype == np.uint16
    assert sample.image.max() > 40000
    assert np.count_nonzero(sample.image % 257) > sample.image.size // 2  # not just 8-bit * 257
    assert np.count_nonzero(sample.classes == 1) > 20000


def test_clusters_touch_and_isolated_cells_stand_apart() -> None:
    cells = place_cells(np.random.default_rng(3), (1536, 2048), 30.0, clusters=2, isolated=5)
    clustered = [c for c in cells if c.cluster]
    isolated = [c for c in cells if not c.cluster]
    assert len(clustered) >= 6 and len(isolated) == 5
    for cell in isolated:
        others = [c for c in cells if c is not cell]
        assert min(np.hypot(cell.row - c.row, cell.col - c.col) - c.a - cell.a for c in others) > 0


def test_axons_follow_the_lattice_axes() -> None:
    cells = place_cells(np.random.default_rng(4), (1536, 2048), 30.0, clusters=2, isolated=4)
    lines = trace_axons(np.random.default_rng(5), cells, 30.0, (200.0, 400.0))
    for line in lines:
        d_row, d_col = line[-1] - line[0]
        angle = np.degrees(np.arctan2(-d_row, d_col))  # counter-clockwise on screen
        off_axis = (angle - 30.0 + 45.0) % 90.0 - 45.0
        assert abs(off_axis) < 10.0


def test_painted_labels_use_the_lab_colours() -> None:
    sample = make_image(np.random.default_rng(6), 192, 256, "200_4")
    neurons_only = paint_label(sample, with_axons=False)
    with_axons = paint_label(sample, with_axons=True)
    assert (neurons_only[sample.clustered] == PAINT_RGB["cluster"]).all()
    assert (with_axons[(sample.classes == 1) & ~sample.clustered] == PAINT_RGB["isolated"]).all()
    assert (with_axons[sample.classes == 2] == PAINT_RGB["axon"]).all()
    axons = neurons_only[sample.classes == 2]
    assert (axons[:, 0] == axons[:, 1]).all()  # unpainted: still gray


def test_dataset_tree_follows_the_raw_contract(tmp_path: Path) -> None:
    raw = make_dataset(tmp_path / "raw", per_condition=2, height=64, width=96, duplicates=6)
    for condition in CONDITIONS:
        numbers = {int(p.stem) for p in (raw / "originals" / condition).glob("*.tif")}
        assert numbers >= {1, 2}
        for n in numbers:
            assert (raw / "labels" / condition / f"label_{n}.jpg").is_file()
            assert io.read_rgb(raw / "labels_axons" / condition / f"label_{n}.jpg").shape == (
                64,
                96,
                3,
            )
            truth = io.read_image(raw / "truth" / condition / f"{n}.png")
            assert truth.dtype == np.uint8 and truth.max() <= 2
    rows = io.read_csv(raw / "truth" / "images.csv")
    assert list(rows[0]) == list(TRUTH_COLUMNS)
    assert len(rows) == 5 * 2 + 6
    copies = [row for row in rows if row["duplicate_of"]]
    assert len(copies) == 6
    for row in copies:
        copy, source = raw / row["image"], raw / row["duplicate_of"]
        assert copy != source and copy.read_bytes() == source.read_bytes()
    empty = [row for row in rows if row["condition"] == "empty"]
    assert all(row["grid_angle_deg"] == "" and row["axon_mode"] == "random" for row in empty)
    settings = io.read_json(raw / "truth" / "settings.json")
    assert settings["per_condition"] == 2 and settings["duplicates"] == 6
    assert (settings["height"], settings["width"]) == (64, 96)


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    def tree(seed: int, name: str) -> dict[str, bytes]:
        raw = make_dataset(tmp_path / name, per_condition=1, height=64, width=96, seed=seed)
        return {str(p.relative_to(raw)): p.read_bytes() for p in raw.rglob("*") if p.is_file()}

    first, again, other = tree(0, "a"), tree(0, "b"), tree(1, "c")
    assert first == again
    assert first.keys() == other.keys()
    assert first["originals/200_2/1.tif"] != other["originals/200_2/1.tif"]


def test_bad_arguments_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="choose one of"):
        make_image(np.random.default_rng(0), 64, 96, "300_3")
    with pytest.raises(ValueError, match="bit_depth 12"):
        make_image(np.random.default_rng(0), 64, 96, "empty", bit_depth=12)
    with pytest.raises(KeyError, match="300_3"):
        make_dataset(tmp_path / "raw", conditions=("200_2", "300_3"))
    assert not (tmp_path / "raw").exists()


def test_compose_synth_config_writes_the_tree(tmp_path: Path) -> None:
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "synth",
            overrides=[f"out_dir={tmp_path}/raw", "per_condition=1", "height=64", "width=96"],
        )
    raw = synth(cfg)
    assert raw == tmp_path / "raw"
    assert len(list(raw.glob("originals/*/*.tif"))) == 5 + cfg.duplicates


@pytest.mark.slow
def test_command_line_entry_point(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "neuroseg.synth", f"out_dir={tmp_path}/raw", "per_condition=1"]
    command += ["height=64", "width=96", "bit_depth=16", f"hydra.run.dir={tmp_path}/run"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "wrote 7 originals" in result.stdout
    assert io.read_image(tmp_path / "raw" / "originals" / "empty" / "1.tif").dtype == np.uint16


def test_make_dataset_refuses_a_foreign_folder(tmp_path: Path) -> None:
    lab = tmp_path / "lab_data"
    (lab / "originals").mkdir(parents=True)
    (lab / "originals" / "keep.tif").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="lab_data"):
        make_dataset(lab, per_condition=1, height=64, width=96)
    assert (lab / "originals" / "keep.tif").read_bytes() == b"precious"
