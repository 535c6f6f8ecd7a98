"""The train entry point on the tiny prepared fixture: compose, fit, test, resume, sweep, DDP."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.data.sample import ensure_sample
from neuroseg.models.checkpoint import load_checkpoint
from neuroseg.models.ternausnet import UNet11, UNet16
from neuroseg.runtime import resolve_precision
from neuroseg.train import train
from neuroseg.training.callbacks import IMAGE_KEYS
from neuroseg.training.module import SegmentationModule
from neuroseg.training.outcome import optimized_value
from neuroseg.training.resume import fit_ckpt_path

REPO = Path(__file__).resolve().parents[1]
# Tiny and fast: random weights, small crops, no loader workers.
FAST = ["encoder.weights=null", "data.crop_hw=[64,96]", "data.batch_size=2", "data.num_workers=0"]
# A real (not fast_dev_run) fit of a few batches, so checkpoints and logs are written.
SHORT = [
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.limit_test_batches=1",
    "trainer=cpu",
    "trainer.log_every_n_steps=1",
]


def compose_train(overrides: list[str]) -> DictConfig:
    """The shipped train config with `overrides`, as `python -m neuroseg.train` would see it."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize(
    ("encoder", "task", "unet", "channels"),
    [("vgg11", "binary", UNet11, 1), ("vgg16", "axons", UNet16, 3)],
)
def test_composed_encoder_and_task_build_the_network_train_fits(
    encoder: str, task: str, unet: type, channels: int
) -> None:
    cfg = compose_train([f"encoder={encoder}", f"task={task}", "encoder.weights=null"])
    options = OmegaConf.to_container(cfg.model, resolve=True)
    model = SegmentationModule(
        encoder=cfg.encoder.name,
        task=cfg.task.name,
        optimizer=instantiate(cfg.optimizer),
        encoder_weights=cfg.encoder.weights,
        **{key: value for key, value in options.items() if key not in IMAGE_KEYS},
    )
    assert type(model.model) is unet
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, channels, 64, 64)


@pytest.mark.parametrize("trainer", ["default", "cpu"])
def test_cpu_trainer_configs_make_a_trainer_writing_under_the_run(
    trainer: str, tmp_path: Path
) -> None:
    cfg = compose_train([f"trainer={trainer}", f"paths.output_dir={tmp_path}"])
    precision = resolve_precision(cfg.trainer.accelerator, cfg.trainer.precision)
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    made = instantiate(cfg.trainer, callbacks=callbacks, logger=False, precision=precision)
    assert Path(made.checkpoint_callback.dirpath) == tmp_path / "checkpoints"
    assert made.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize(
    "overrides",
    [
        ["optimizer=adamw", "scheduler=cosine"],
        ["optimizer=sgd", "scheduler=plateau"],
        ["logger=[tensorboard,csv]", "callbacks=early_stopping"],
        ["experiment=demo", "debug=fdr"],
        ["hparams_search=lr_alpha"],
    ],
)
def test_options_instantiate(overrides: list[str], tmp_path: Path) -> None:
    cfg = compose_train([*overrides, f"paths.output_dir={tmp_path}"])
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    if cfg.get("scheduler"):
        instantiate(cfg.scheduler)(optimizer)
    callbacks = [instantiate(node) for node in cfg.callbacks.values()]
    loggers = [instantiate(node) for node in cfg.logger.values()]
    assert callbacks and loggers


def test_slurm_launcher_follows_the_trainer() -> None:
    import neuroseg.training.sweep  # noqa: F401  its gpus_per_node resolver, as Hydra's callback loads it

    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=submitit_slurm", "trainer=ddp", "trainer.devices=2"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 2 and launcher.nodes == 1


def test_demo_experiment_settings(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=demo", f"paths.output_dir={tmp_path}"])
    assert cfg.encoder.name == "vgg11" and cfg.task.name == "binary"
    assert cfg.encoder.offline_fallback is True and cfg.trainer.accelerator == "cpu"
    assert cfg.data.dir == cfg.sample.prepared_dir == "data/sample/prepared"
    assert compose_train([]).encoder.offline_fallback is False


@pytest.mark.parametrize(
    ("encoder", "task"), [("vgg11", "binary"), ("vgg11", "axons"), ("vgg16", "axons")]
)
def test_fast_dev_run(encoder: str, task: str, prepared_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(
        [*FAST, f"encoder={encoder}", f"task={task}", f"data.dir={prepared_dir}", "debug=fdr"]
        + [f"paths.output_dir={tmp_path}"]
    )
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])
    names = ["iou", "iou_neurons", "dice", "dice_neurons"]
    names += ["iou_axons", "dice_axons"] if task == "axons" else []
    for stage in ("val", "test"):
        for name in names:
            assert 0.0 <= metrics[f"{stage}/{name}"] <= 1.0
    assert ("test/iou_axons" in metrics) == (task == "axons")


def read_events(folder: Path) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_fit_logs_checkpoints_and_resumes(prepared_dir: Path, tmp_path: Path) -> None:
    common = [*FAST, *SHORT, f"data.dir={prepared_dir}", f"paths.output_dir={tmp_path}"]
    common += ["model.image_every_n_epochs=1", "model.image_count=2"]
    metrics = train(compose_train([*common, "trainer.max_epochs=2"]))
    assert 0.0 <= metrics["val/iou"] <= 1.0 and 0.0 <= metrics["test/iou"] <= 1.0

    checkpoints = tmp_path / "checkpoints"
    best = [path for path in checkpoints.glob("epoch*-iou*.ckpt")]
    assert len(best) == 1 and (checkpoints / "last.ckpt").is_file()
    saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    hparams = saved["hyper_parameters"]
    assert hparams["encoder"] == "vgg11" and hparams["encoder_weights"] is None
    assert hparams["task"] == "binary" and hparams["threshold"] == 0.5
    assert "model.encoder.0.weight" in saved["state_dict"]
    assert saved["epoch"] == 1 and saved["global_step"] == 4

    events = read_events(tmp_path / "tensorboard" / "version_0")
    scalars = events.Tags()["scalars"]
    for name in ("train/loss", "train/iou", "val/loss", "val/iou", "val/dice_neurons", "test/iou"):
        assert name in scalars, name
    images = events.Tags()["images"]
    assert len(images) == 2 and all(tag.startswith("val_tiles/") for tag in images)
    assert len(events.Images(images[0])) == 2  # one per epoch
    # input | truth | prediction side by side: three tiles wide
    first = events.Images(images[0])[0]
    assert first.width == 3 * 128 and first.height == 96

    # Resume in the same run folder: one more epoch, Adam's step count carried over.
    train(compose_train([*common, "trainer.max_epochs=3", "ckpt_path=last", "test=false"]))
    resumed = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert resumed["epoch"] == 2 and resumed["global_step"] == 6
    adam_state = resumed["optimizer_states"][0]["state"][0]
    assert int(adam_state["step"]) == 6
    assert (tmp_path / "tensorboard" / "version_1").is_dir()
    # Resuming with another task (the first run's overrides forgotten) names the fix up front.
    wrong = [*common, "task=axons", "trainer.max_epochs=4", "ckpt_path=last", "test=false"]
    with pytest.raises(ValueError, match=r"task=binary but task=axons.*overrides\.yaml"):
        train(compose_train(wrong))

    # A checkpoint written before the module took typed arguments holds `encoder` as a dict of
    # build_model's keys: evaluate and predict load it, a run resumes from it, the guard reads it.
    old = tmp_path / "old.ckpt"
    resumed["hyper_parameters"] = OLD_HPARAMS
    torch.save(resumed, old)
    assert load_checkpoint(old).encoder == "vgg11" and load_checkpoint(old).task == "binary"
    more = [*common, "trainer.max_epochs=4", f"ckpt_path={old}", "test=false"]
    train(compose_train(more))
    continued = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert continued["epoch"] == 3 and continued["global_step"] == 8
    with pytest.raises(ValueError, match=r"old.ckpt holds task=binary but task=axons"):
        train(compose_train([*more, "task=axons"]))


# hyper_parameters as SegmentationModule saved them while it took the encoder as a config section.
OLD_HPARAMS = {
    "encoder": {"name": "vgg11", "weights": None, "offline_fallback": False},
    "task": "binary",
    "scheduler_monitor": "val/iou",
    "loss": {"alpha": 0.5, "class_weights": None},
    "threshold": 0.5,
    "channels_last": True,
    "compile": False,
}


def test_missing_checkpoint_names_the_file(prepared_dir: Path, tmp_path: Path) -> None:
    base = [*FAST, "debug=fdr", f"data.dir={prepared_dir}", f"paths.output_dir={tmp_path}"]
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        train(compose_train([*base, f"ckpt_path={tmp_path}/nowhere.ckpt"]))
    with pytest.raises(FileNotFoundError, match="last.ckpt"):
        train(compose_train([*base, "ckpt_path=last"]))


def test_gpu_data_settings_build_a_datamodule(prepared_dir: Path, tmp_path: Path) -> None:
    cfg = compose_train(
        ["trainer=gpu", "data=gpu", f"data.dir={prepared_dir}", f"paths.output_dir={tmp_path}"]
    )
    assert cfg.trainer.benchmark is True and cfg.data.pin_memory is True and cfg.data.cache
    datamodule = NeuroSegDataModule(**cfg.data, task=cfg.task.name)
    assert datamodule.batch_size == 16 and datamodule.num_workers == 8


def test_resume_values_become_lightnings_and_last_must_exist(tmp_path: Path) -> None:
    trainer = SimpleNamespace(
        checkpoint_callback=SimpleNamespace(dirpath=str(tmp_path)), default_root_dir=str(tmp_path)
    )
    # auto is Lightning's "last": resume when a last checkpoint exists, else start afresh.
    assert fit_ckpt_path("auto", trainer) == "last" and fit_ckpt_path("hpc", trainer) == "hpc"
    assert fit_ckpt_path(None, trainer) is None
    with pytest.raises(FileNotFoundError, match=r"ckpt_path=last: .*last.ckpt does not exist"):
        fit_ckpt_path("last", trainer)
    (tmp_path / "last.ckpt").write_bytes(b"")
    assert fit_ckpt_path("last", trainer) == "last"
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        fit_ckpt_path(str(tmp_path / "nowhere.ckpt"), trainer)


def test_ensure_sample_makes_once_then_reuses(tmp_path: Path) -> None:
    cfg = compose_train(["experiment=demo", f"paths.data_dir={tmp_path}"])
    sample = OmegaConf.to_container(cfg.sample, resolve=True)
    sample["synth"].update(per_condition=1, height=64, width=96)
    sample["prepare"]["fractions"] = {"train": 0.6, "val": 0.2, "test": 0.2}
    prepared = ensure_sample(**sample)
    assert prepared == tmp_path / "sample" / "prepared"
    manifest = prepared / "manifest.csv"
    stamp = manifest.stat().st_mtime_ns
    assert ensure_sample(**sample) == prepared and manifest.stat().st_mtime_ns == stamp
    assert sorted(path.name for path in prepared.iterdir() if path.is_dir()) == [
        "test",
        "train",
        "val",
    ]
    # Speed settings are not settings of the data: another worker count reuses the trees.
    faster = {**sample, "prepare": {**sample["prepare"], "workers": 2}}
    assert ensure_sample(**faster) == prepared and manifest.stat().st_mtime_ns == stamp
    # Other settings are never silently ignored: the error names them and the fix.
    more = {**sample, "synth": {**sample["synth"], "per_condition": 2}}
    with pytest.raises(ValueError, match=r"prepared was made .*synth.per_condition=1 \(asked: 2\)"):
        ensure_sample(**more)
    shutil.rmtree(prepared)  # the raw tree alone is checked too
    with pytest.raises(ValueError, match=r"raw was made .*per_condition=1 \(asked: 2\).*Delete"):
        ensure_sample(**more)
    assert ensure_sample(**sample) == prepared and manifest.is_file()


def run_train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "neuroseg.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_multirun_makes_one_folder_per_job(prepared_dir: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["-m", "task=binary,axons", *FAST, *SHORT, "trainer.max_epochs=1"]
    args += [f"data.dir={prepared_dir}", f"hydra.sweep.dir={sweep}"]
    result = run_train(args, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert (sweep / job / ".hydra" / "config.yaml").is_file()
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert list((sweep / job / "tensorboard").glob("version_0/events.out.tfevents.*"))
    assert OmegaConf.load(sweep / "1" / ".hydra" / "config.yaml").task.name == "axons"


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(prepared_dir: Path, tmp_path: Path) -> None:
    args = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    args += ["trainer.precision=32-true", "debug=fdr", *FAST, f"data.dir={prepared_dir}"]
    args += [f"hydra.run.dir={tmp_path}/run"]
    result = run_train(args, cwd=REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "distributed_backend=gloo" in output and "All distributed processes registered" in output
    assert "test/iou" in output


def fit_epochs(prepared_dir: Path, tmp_path: Path, epochs: int, extra: list[str]) -> dict:
    """Fit `epochs` short epochs (2 train batches, 1 val batch), no test; last.ckpt as saved."""
    overrides = [*FAST, *SHORT, f"data.dir={prepared_dir}", f"paths.output_dir={tmp_path}"]
    overrides += [f"trainer.max_epochs={epochs}", "test=false", "logger=csv", *extra]
    train(compose_train(overrides))
    return torch.load(
        tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )


def last_lr(saved: dict) -> float:
    return saved["optimizer_states"][0]["param_groups"][0]["lr"]


def test_plateau_scheduler_halves_the_lr_when_val_iou_stalls(
    prepared_dir: Path, tmp_path: Path
) -> None:
    # An absolute threshold of 2 IoU can never be beaten, so every epoch after the first stalls.
    extra = ["scheduler=plateau", "scheduler.patience=0", "+scheduler.threshold_mode=abs"]
    saved = fit_epochs(prepared_dir, tmp_path, 3, [*extra, "+scheduler.threshold=2.0"])
    # The first step sets the best; with patience 0 every later step halves the LR. How many
    # steps last.ckpt saw depends on Lightning's hook order, so count them from its state.
    steps = saved["lr_schedulers"][0]["last_epoch"]
    assert saved["epoch"] == 2 and steps >= 2
    assert last_lr(saved) == pytest.approx(1e-3 * 0.5 ** (steps - 1))
    assert saved["lr_schedulers"][0]["num_bad_epochs"] == 0  # reset by the cut


def test_cosine_scheduler_follows_the_cosine_per_epoch(prepared_dir: Path, tmp_path: Path) -> None:
    saved = fit_epochs(prepared_dir, tmp_path, 2, ["scheduler=cosine"])
    # T_max = max_epochs = 2, one step per epoch: after step t the LR is the cosine at t / 2
    # (halfway down after one, eta_min after two).
    steps = saved["lr_schedulers"][0]["last_epoch"]
    assert steps >= 1
    expected = 1e-6 + (1e-3 - 1e-6) * (1 + math.cos(math.pi * steps / 2)) / 2
    assert last_lr(saved) == pytest.approx(expected) and last_lr(saved) < 1e-3


def test_early_stopping_stops_before_max_epochs(prepared_dir: Path, tmp_path: Path) -> None:
    # min_delta 2 IoU: no epoch after the first counts as better, so patience 1 ends epoch 2.
    extra = ["callbacks=early_stopping", "callbacks.early_stopping.patience=1"]
    saved = fit_epochs(
        prepared_dir, tmp_path, 6, [*extra, "callbacks.early_stopping.min_delta=2.0"]
    )
    assert saved["epoch"] == 1  # 0-based: stopped after the second of six epochs
    stopper = next(v for k, v in saved["callbacks"].items() if k.startswith("EarlyStopping"))
    assert stopper["stopped_epoch"] == 1 and stopper["wait_count"] == 1


def test_missing_optimized_metric_names_it_and_the_logged_ones() -> None:
    metrics = {"val/iou": 0.5, "train/loss": 0.1}
    assert optimized_value(metrics, "val/iou") == 0.5 and optimized_value(metrics, None) is None
    with pytest.raises(KeyError, match=r"optimized_metric='val/ioo'.*\['train/loss', 'val/iou'\]"):
        optimized_value(metrics, "val/ioo")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # composing refuses a wrong type (the schema, data/settings.py DataSettings) ...
        ("data.batch_size=abc", "data.batch_size=abc (Value 'abc' of type 'str' could not be"),
        ("data.augment.noise_p=often", "data.augment.noise_p=often (Value 'often'"),
        # ... and train a key forced in with `+`, listing the valid ones
        ("+data.batch_sise=4", "data.batch_sise: Key 'batch_sise' not in 'DataSettings'"),
    ],
)
def test_bad_data_setting_fails_in_one_line_naming_the_key(
    override: str, message: str, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, "-m", "neuroseg.train", override, f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert message in lines[0]
