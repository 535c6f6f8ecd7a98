"""Several devices give the numbers one gives: DDP evaluation, per-rank augmentation, precision."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize
from omegaconf import OmegaConf

import neuroseg.training.sweep  # noqa: F401  registers the gpus_per_node resolver, as Hydra's callback does
from neuroseg import io, runtime
from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.inference.settings import inference_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def odd_prepared(prepared_dir: Path, tmp_path: Path) -> Path:
    """The session's prepared set with one val and one test tile left out: 3 val, 7 test tiles."""
    out = tmp_path / "prepared"
    shutil.copytree(prepared_dir, out)
    rows = io.read_csv(out / "manifest.csv")
    dropped = {
        split: [r for r in rows if r["split"] == split][-1]["tile"] for split in ("val", "test")
    }
    kept = [row for row in rows if row["tile"] not in dropped.values()]
    io.write_csv(out / "manifest.csv", kept, list(rows[0]))
    counts = {split: sum(row["split"] == split for row in kept) for split in ("val", "test")}
    assert counts == {"val": 3, "test": 7}
    return out


def datamodule_on_rank(prepared: Path, rank: int, world_size: int) -> NeuroSegDataModule:
    """A DataModule as Lightning attaches it to process `rank` of `world_size` (no real group)."""
    module = NeuroSegDataModule(
        dir=prepared, task="binary", batch_size=1, eval_batch_size=2, crop_hw=(64, 96)
    )
    module.trainer = SimpleNamespace(global_rank=rank, world_size=world_size)
    module.setup()
    return module


def loader_tiles(loader: torch.utils.data.DataLoader) -> list[str]:
    return [tile for batch in loader for tile in batch["tile"]]


def test_evaluation_shares_tiles_among_ranks_without_repeats(odd_prepared: Path) -> None:
    for split in ("val", "test"):
        shares = []
        for rank in range(2):
            module = datamodule_on_rank(odd_prepared, rank, 2)
            shares.append(loader_tiles(getattr(module, f"{split}_dataloader")()))
        every = [
            row["tile"]
            for row in io.read_csv(odd_prepared / "manifest.csv")
            if row["split"] == split
        ]
        assert sorted(shares[0] + shares[1]) == sorted(every), split
        assert abs(len(shares[0]) - len(shares[1])) == 1


def test_more_ranks_than_tiles_is_refused(odd_prepared: Path) -> None:
    module = datamodule_on_rank(odd_prepared, 0, 4)
    with pytest.raises(ValueError, match=r"manifest.csv: split 'val' has 3 tiles for 4 processes"):
        module.val_dataloader()


def test_ranks_draw_different_augmentations_and_each_rank_repeats_its_own(
    odd_prepared: Path,
) -> None:
    def first_crop(rank: int) -> torch.Tensor:
        dataset = datamodule_on_rank(odd_prepared, rank, 2).datasets["train"]
        torch.manual_seed(0)  # what seed_everything gives every rank alike, num_workers=0
        return dataset[0]["image"]

    rank0, rank1 = first_crop(0), first_crop(1)
    assert rank0.shape == rank1.shape == (3, 64, 96)
    assert not torch.equal(rank0, rank1)
    assert torch.equal(first_crop(1), rank1)


def train_metrics(prepared: Path, run_dir: Path, devices: int) -> tuple[dict[str, float], str]:
    """(val/test metrics, stderr) of one epoch at learning rate 0 (the initial weights) on
    `devices` CPU processes; the metrics as the run's CSV log holds them."""
    trainer = ["trainer=default"] if devices == 1 else ["trainer=ddp", "trainer.devices=2"]
    command = [sys.executable, "-m", "neuroseg.train", *trainer, "trainer.accelerator=cpu"]
    command += ["trainer.precision=32-true", "++trainer.benchmark=false", "trainer.max_epochs=1"]
    command += ["+trainer.limit_train_batches=1", "trainer.log_every_n_steps=1"]
    command += [f"data.dir={prepared}", "data.num_workers=0", "data.eval_batch_size=1"]
    command += ["data.crop_hw=[64,96]", "encoder.weights=null", "optimizer.lr=0.0", "logger=csv"]
    command += ["model.image_every_n_epochs=0", "threads=1", f"hydra.run.dir={run_dir}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    values: dict[str, float] = {}
    for row in io.read_csv(run_dir / "csv" / "version_0" / "metrics.csv"):
        for name, value in row.items():
            if name.startswith(("val/", "test/")) and value != "":
                values[name] = float(value)
    return values, done.stderr


@pytest.mark.slow
def test_two_processes_score_val_and_test_as_one(odd_prepared: Path, tmp_path: Path) -> None:
    one = train_metrics(odd_prepared, tmp_path / "one", devices=1)[0]
    two, stderr = train_metrics(odd_prepared, tmp_path / "two", devices=2)
    assert {"val/iou", "val/loss", "test/iou", "test/dice", "test/loss"} <= set(one)
    assert set(one) == set(two)
    differ = {
        name: (value, two[name])
        for name, value in one.items()
        if not math.isclose(two[name], value, rel_tol=1e-5, abs_tol=1e-6)
    }
    assert not differ, f"1 process vs 2: {differ}"
    # Scores already summed across processes are logged as such: Lightning does not nag.
    assert "sync_dist" not in stderr and "DistributedSampler" not in stderr


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """A mocked CUDA device that emulates bf16; `native` says whether it also runs it natively."""
    capability = {"native": False}
    monkeypatch.setattr(runtime, "_warned", set(), raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda,
        "is_bf16_supported",
        lambda including_emulation=True: including_emulation or capability["native"],
    )
    return capability


def test_gpu_without_native_bf16_trains_in_fp16_mixed_and_warns_once(
    gpu: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="neuroseg.runtime"):
        for accelerator in ("gpu", "cuda", "auto", "gpu"):
            assert runtime.resolve_precision(accelerator, "bf16-mixed") == "16-mixed"
    assert len(caplog.records) == 1 and "no native bf16" in caplog.messages[0]
    assert runtime.resolve_precision("gpu", "bf16-true") == "32-true"
    assert runtime.resolve_precision("gpu", "32-true") == "32-true"


def test_gpu_with_native_bf16_keeps_it(gpu: dict[str, bool]) -> None:
    gpu["native"] = True
    assert runtime.resolve_precision("gpu", "bf16-mixed") == "bf16-mixed"


def test_predict_on_gpu_without_native_bf16_runs_fp32(
    gpu: dict[str, bool], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = OmegaConf.create(
        {
            "window": [64, 96],
            "overlap": 0.25,
            "batch_size": 2,
            "tta": False,
            "device": "cuda",
            "precision": "bf16",
        }
    )
    with caplog.at_level("WARNING", logger="neuroseg.runtime"):
        for _ in range(3):  # once per run, and a sweep runs predict again in one process
            assert inference_settings(cfg, stage="predict").precision == "32"
    assert len(caplog.records) == 1 and caplog.messages[0].startswith("predict: ")
    gpu["native"] = True
    assert inference_settings(cfg, stage="predict").precision == "bf16"


@pytest.mark.parametrize(("trainer", "gpus"), [("gpu", 1), ("ddp", 4), ("cpu", None)])
def test_submitit_asks_for_gpus_only_on_a_gpu_trainer(trainer: str, gpus: int | None) -> None:
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=submitit_slurm", f"trainer={trainer}"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher.gpus_per_node == gpus and launcher.tasks_per_node == cfg.trainer.devices
    assert launcher.cpus_per_task <= 2 and launcher.mem_gb <= 8  # a small node takes the job


@pytest.mark.slow
def test_local_ddp_sweep_keeps_every_rank_in_one_sweep_folder(
    odd_prepared: Path, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "neuroseg.train", "-m", "trainer=ddp", "trainer.devices=2"]
    command += ["trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_epochs=1"]
    command += ["+trainer.limit_train_batches=1", "test=false", "logger=csv", "threads=1"]
    command += [f"data.dir={odd_prepared}", "data.num_workers=0", "data.crop_hw=[64,96]"]
    command += ["encoder.weights=null", f"paths.log_dir={tmp_path / 'outputs'}", "seed=1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    # Rank 1 reruns the command line a few seconds later, so ${now} alone would differ.
    sweeps = list((tmp_path / "outputs" / "train" / "multirun").iterdir())
    assert len(sweeps) == 1, sweeps
    assert (sweeps[0] / "0" / "checkpoints" / "last.ckpt").is_file()
