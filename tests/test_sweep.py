"""hparams_search=optuna: a seeded TPE study through hydra-optuna-sweeper, and trials.csv."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from neuroseg.io import read_csv
from neuroseg.training.sweep import swept_values, trial_record, trials_table

REPO = Path(__file__).resolve().parents[1]


# In CI (CI=true) every extra is installed: there a missing one fails instead of skipping.
needs_optuna = pytest.mark.skipif(
    os.environ.get("CI") != "true"
    and importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None,
    reason="needs hydra-optuna-sweeper: pip install -e '.[export]'",
)


def test_swept_values_keep_only_the_sweepers_parameters() -> None:
    overrides = [
        "data.dir=x",
        "optimizer.lr=0.001",
        "+model.loss.alpha=0.3",
        "hparams_search=optuna",
    ]
    assert swept_values(overrides, ["optimizer.lr", "model.loss.alpha"]) == {
        "optimizer.lr": "0.001",
        "model.loss.alpha": "0.3",
    }


def job_return(num: int, status: JobStatus, value: object, overrides: list[str]) -> JobReturn:
    """What Hydra hands a callback after job `num`."""
    result = JobReturn(
        overrides=overrides,
        hydra_cfg=OmegaConf.create({"hydra": {"job": {"num": num}}}),
        status=status,
    )
    result.return_value = value
    return result


def test_trials_table_lists_failed_trials_with_their_error() -> None:
    params = ["optimizer.lr"]
    records = [
        trial_record(
            job_return(1, JobStatus.FAILED, RuntimeError("nan loss"), ["optimizer.lr=1"]),
            params,
            "val/iou",
        ),
        trial_record(
            job_return(0, JobStatus.COMPLETED, 0.25, ["optimizer.lr=0.01"]), params, "val/iou"
        ),
    ]
    rows, columns = trials_table(records)
    assert columns == ["trial", "status", "val/iou", "optimizer.lr", "error"]
    assert [row["trial"] for row in rows] == [0, 1]
    assert rows[0]["val/iou"] == 0.25 and rows[0]["optimizer.lr"] == "0.01"
    assert rows[1]["status"] == "failed" and math.isnan(rows[1]["val/iou"])
    assert "nan loss" in rows[1]["error"]


@needs_optuna
def test_optuna_search_composes_a_seeded_tpe_study() -> None:
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "train", overrides=["hparams_search=optuna", "seed=7"], return_hydra_config=True
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.seed == 7 and sweeper.direction == "maximize"
    assert cfg.optimized_metric == "val/iou"
    assert set(sweeper.params) == {"optimizer.lr", "model.loss.alpha"}
    assert cfg.hydra.callbacks.sweep_summary._target_ == "neuroseg.training.sweep.SweepSummary"


@pytest.mark.slow
@needs_optuna
def test_two_optuna_trials_write_trials_csv(prepared_dir: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}"]
    args += ["encoder.weights=null", "data.crop_hw=[64,64]", "data.batch_size=1"]
    args += ["data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1", "test=false"]
    args += ["+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1", "logger=csv"]
    args += [f"data.dir={prepared_dir}"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "neuroseg.train", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(sweep / "trials.csv")
    assert [row["trial"] for row in rows] == ["0", "1"]
    for row in rows:
        assert row["status"] == "completed"
        assert 0.0 <= float(row["val/iou"]) <= 1.0
        assert 1e-5 <= float(row["optimizer.lr"]) <= 1e-2
        assert 0.1 <= float(row["model.loss.alpha"]) <= 0.9
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == max(float(row["val/iou"]) for row in rows)
