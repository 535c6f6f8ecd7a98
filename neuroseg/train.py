"""Train a U-Net and test its best checkpoint: python -m neuroseg.train encoder=vgg16 task=axons."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from neuroseg.cli import command
from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.data.sample import ensure_sample
from neuroseg.errors import InputError, MissingPathError, UsageError
from neuroseg.models.checkpoint import (
    check_checkpoint_path,
    initial_weights,
    lightning_names,
    read_checkpoint,
)
from neuroseg.runtime import resolve_precision, set_threads
from neuroseg.training.module import SegmentationModule

log = logging.getLogger(__name__)

# conf/model keys that configure the ValidationImages callback (through conf/callbacks), kept
# under `model` so `model.image_every_n_epochs=...` works as it always has.
IMAGE_KEYS = ("image_every_n_epochs", "image_count")


@command("train")
def main(cfg: DictConfig) -> float | None:
    return optimized_value(train(cfg), cfg.get("optimized_metric"))


def optimized_value(metrics: Mapping[str, float], name: str | None) -> float | None:
    """The metric a sweeper optimises; None when `optimized_metric` is unset.

    A name that no stage logged raises instead of handing the sweeper None, which Optuna and
    similar sweepers would take as a failed or empty trial without saying why.
    """
    if name is None:
        return None
    if name not in metrics:
        raise KeyError(
            f"optimized_metric={name!r} was not logged by this run; logged: {sorted(metrics)}. "
            "Set optimized_metric to one of them (e.g. val/iou)"
        )
    return metrics[name]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the logged metrics for sweeps and tests."""
    ckpt_path, trusted = cfg.get("ckpt_path"), cfg.trust_checkpoint
    named = ckpt_path not in (None, "last", "auto")
    if named:  # checked before any setup: a wrong file costs a second, and one line
        check_resume(Path(ckpt_path), cfg.encoder.name, cfg.task.name, trusted)
    if cfg.get("sample"):
        ensure_sample(**OmegaConf.to_container(cfg.sample, resolve=True))
    set_threads(cfg.get("threads"))
    start = fine_tune_weights(
        cfg.get("init_from"),
        ckpt_path,
        cfg.encoder.name,
        cfg.task.name,
        trusted,
    )
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = NeuroSegDataModule(**cfg.data, task=cfg.task.name)
    model = SegmentationModule(
        # Fine-tuning overwrites every weight: no ImageNet download for the encoder.
        encoder=cfg.encoder if start is None else {**cfg.encoder, "weights": None},
        task=cfg.task.name,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        **{key: value for key, value in cfg.model.items() if key not in IMAGE_KEYS},
    )
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node]
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values() if node]
    precision = resolve_precision(cfg.trainer.accelerator, cfg.trainer.precision)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision
    )
    resume = resume_path(ckpt_path, trainer)
    if resume is not None and not named:
        check_resume(Path(resume), cfg.encoder.name, cfg.task.name, trusted)
    elif resume is None and start is not None:
        model.model.load_state_dict(start)
        log.info("fine-tuning from init_from=%s: fresh optimiser and schedule", cfg.init_from)
    # Lightning reads the file again: as safely as the check did.
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=not trusted)
    metrics = dict(trainer.callback_metrics)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint(trainer))
        metrics.update(trainer.callback_metrics)
    report(trainer)
    return {name: float(value) for name, value in metrics.items()}


def fine_tune_weights(
    init_from: str | None, ckpt_path: str | None, encoder: str, task: str, trusted: bool
) -> dict[str, torch.Tensor] | None:
    """The network weights of `init_from` (ours or legacy), checked against the run's encoder and
    task before any data is read; None without init_from.

    ckpt_path=auto may go with it (a requeued fine-tuning job resumes its own last.ckpt once it
    exists); any other ckpt_path resumes a run, which contradicts starting from other weights.
    """
    if init_from is None:
        return None
    if ckpt_path not in (None, "auto"):
        raise UsageError(
            f"init_from={init_from} and ckpt_path={ckpt_path}: pass init_from to fine-tune "
            "from a model's weights, or ckpt_path to resume a run, not both"
        )
    return initial_weights(Path(init_from), encoder, task, trusted)


def resume_path(ckpt_path: str | None, trainer: pl.Trainer) -> str | None:
    """The checkpoint to resume from: a path, `last` = this run's checkpoints/last.ckpt, or `auto`
    = last.ckpt when it exists, else a fresh start (a requeued cluster job restarting itself)."""
    if ckpt_path is None:
        return None
    if ckpt_path not in ("last", "auto"):
        check_checkpoint_path(Path(ckpt_path))  # a missing file or a folder: one line each
        return ckpt_path
    folder = getattr(trainer.checkpoint_callback, "dirpath", None)
    path = Path(folder or trainer.default_root_dir) / "last.ckpt"
    if ckpt_path == "auto" and not path.is_file():
        return None
    if not path.is_file():
        raise MissingPathError(
            f"ckpt_path={ckpt_path}: {path} does not exist; give hydra.run.dir=<the run's "
            "folder> to continue a run, or ckpt_path=<a .ckpt file>"
        )
    return str(path)


def check_resume(path: Path, encoder: str, task: str, trusted: bool = False) -> None:
    """Refuse a checkpoint of another encoder or task before Lightning fails on tensor shapes.

    A resumed run is composed afresh from the command line, so it must repeat the first run's
    overrides; the error names them. Unless `trusted` (trust_checkpoint=true), a file pickling
    more than tensors and plain containers is refused unread, as evaluate and predict do.
    """
    saved = read_checkpoint(path, trusted)
    if not isinstance(saved, Mapping) or "hyper_parameters" not in saved:
        raise InputError(f"ckpt_path={path} is not a checkpoint written by train; resume from one")
    try:
        lightning_names(saved["hyper_parameters"], path, encoder, task)
    except ValueError as error:
        overrides = path.parent.parent / ".hydra" / "overrides.yaml"
        raise UsageError(
            f"{error}. A resumed run must repeat the first run's overrides (listed in "
            f"{overrides}), e.g. python -m neuroseg.train encoder=<...> task=<...> ckpt_path=..."
        ) from None


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint's path, or None to test the current weights (fast_dev_run saves none)."""
    path = getattr(trainer.checkpoint_callback, "best_model_path", "")
    return path or None


@rank_zero_only
def report(trainer: pl.Trainer) -> None:
    """Say where the run's logs and best checkpoint are."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            log.info(f"TensorBoard logs: {logger.log_dir} (tensorboard --logdir {logger.log_dir})")
        elif getattr(logger, "log_dir", None):
            log.info(f"{type(logger).__name__} logs: {logger.log_dir}")
    callback = trainer.checkpoint_callback
    if callback is not None and callback.best_model_path:
        score = callback.best_model_score
        scored = "" if score is None else f" ({callback.monitor}={float(score):.4f})"
        log.info(f"best checkpoint: {callback.best_model_path}{scored}")


if __name__ == "__main__":
    main()
