"""The GPU benchmark's run, checked small on CPU so a GPU session spends its time measuring."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize

from benchmarks import end_to_end, grid_calibration
from benchmarks.epoch import full_overrides, full_run, scaling
from neuroseg import io

REPO = Path(__file__).resolve().parents[1]


def test_gpu_overrides_compose_the_gpu_settings(tmp_path: Path) -> None:
    overrides = full_overrides(tmp_path, "gpu", (512, 768), workers=8, epochs=100)
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("train", overrides=overrides)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.benchmark is True and cfg.trainer.max_epochs == 100
    assert cfg.data.batch_size == 16 and cfg.data.pin_memory and cfg.data.cache
    assert list(cfg.data.crop_hw) == [512, 768] and cfg.data.num_workers == 8
    assert cfg.model.channels_last and cfg.encoder.weights is None and not cfg.test
    assert cfg.callbacks.epoch_clock._target_ == "benchmarks.common.EpochClock"


@pytest.mark.slow
def test_full_run_small_on_cpu(tmp_path: Path) -> None:
    result = full_run(
        tmp_path, per_condition=1, epochs=2, workers=0, accelerator="cpu",
        source_hw=(192, 256), crop_hw=(64, 96),
    )  # fmt: skip
    manifest = io.read_csv(tmp_path / "full" / "prepared" / "manifest.csv")
    train_tiles = sum(row["split"] == "train" for row in manifest)
    assert result["sources"] == 5 and result["train_tiles"] == train_tiles > 0
    epochs = result["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    # Epoch 0 (warm-up, autotuning on a GPU) is left out of the rate.
    assert math.isclose(result["images_per_s"], train_tiles / epochs[1]["train_s"])
    assert result["fit_wall_s"] >= sum(e["total_s"] for e in epochs)
    assert all(0.0 <= e["val_iou"] <= 1.0 for e in epochs)
    assert result["of_bf16_peak"] is None and result["peak_gpu_alloc_mib"] is None
    assert result["peak_rss_mib"] > 0 and result["achieved_tflops_per_s_per_device"] > 0


@pytest.mark.slow
def test_full_run_with_ddp_reports_per_device(tmp_path: Path) -> None:
    out = tmp_path / "ddp.json"
    command = [sys.executable, "-m", "benchmarks.epoch", "--full", "--accelerator", "cpu"]
    command += ["--devices", "2", "--epochs", "2", "--per-condition", "1", "--workers", "0"]
    command += ["--source-hw", "192x256", "--crop-hw", "64x96", "--work-dir", str(tmp_path)]
    command += ["--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    full = io.read_json(out)["full"]
    assert full["devices"] == 2 and "trainer=ddp" in full["overrides"]
    assert math.isclose(full["images_per_s_per_device"], full["images_per_s"] / 2)
    assert [e["epoch"] for e in full["epochs"]] == [0, 1]
    assert full["baseline"] is None  # no one-device run of this size to compare with


def test_scaling_divides_per_device_rate_by_the_one_device_rate(tmp_path: Path) -> None:
    full = {"images_per_s_per_device": 3.0}
    assert scaling(full, tmp_path / "absent.json") == {"baseline": None}
    single = tmp_path / "single.json"
    io.write_json(single, {"full": {"images_per_s": 4.0, "device": "cpu"}})
    assert scaling(full, single) == {
        "baseline": str(single),
        "baseline_device": "cpu",
        "efficiency": 0.75,
    }
    other_size = tmp_path / "other.json"
    io.write_json(other_size, {"full": {"images_per_s": 4.0, "device": "cpu", "sources": 45}})
    assert scaling(full | {"sources": 5}, other_size) == {"baseline": None}


@pytest.mark.slow
def test_end_to_end_quick_on_cpu(tmp_path: Path) -> None:
    result = end_to_end.run("quick", tmp_path, seed=0, epochs=1)
    per_image = result["per_image"]
    assert per_image["n_images"] >= 1 and per_image["n_compared"] <= per_image["n_images"]
    assert result["conclusions"]["claims"]  # one row per group at least
    grids = result["axonless_grids"]
    assert len(grids["images"]) == 2 and grids["axon_px_per_image"] >= 0
    for folder in ("analysis_hand", "analysis_predicted"):
        assert (tmp_path / folder / "grids.csv").is_file()


@pytest.mark.slow
def test_grid_calibration_small() -> None:
    result = grid_calibration.calibrate((256, 320), 4, 1, 0.2, seed=0)
    flat = result["flat"]
    assert flat["n"] == 4 and 0 < flat["wide_max"] and 0 < flat["narrow_max"]
    assert len(result["lattices"]) == 12
    assert all(0 <= case["new_rate"] <= 1 for case in result["lattices"])
