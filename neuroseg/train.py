"""Train a U-Net and test its best checkpoint: python -m neuroseg.train encoder=vgg16 task=axons."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.demo import ensure_sample
from neuroseg.lit import SegmentationModule
from neuroseg.models.checkpoint import lightning_names, read_checkpoint
from neuroseg.precision import resolve_precision
from neuroseg.threads import set_threads

log = logging.getLogger(__name__)

# conf/model keys that configure the ValidationImages callback (through conf/callbacks), kept
# under `model` so `model.image_every_n_epochs=...` works as it always has.
IMAGE_KEYS = ("image_every_n_epochs", "image_count")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
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
    if cfg.get("sample"):
        ensure_sample(**OmegaConf.to_container(cfg.sample, resolve=True))
    set_threads(cfg.get("threads"))
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = NeuroSegDataModule(**cfg.data, task=cfg.task.name)
    model = SegmentationModule(
        encoder=cfg.encoder,
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
    resume = resume_path(cfg.get("ckpt_path"), trainer)
    if resume is not None:
        check_resume(Path(resume), cfg.encoder.name, cfg.task.name)
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
    metrics = dict(trainer.callback_metrics)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint(trainer))
        metrics.update(trainer.callback_metrics)
    report(trainer)
    return {name: float(value) for name, value in metrics.items()}


def resume_path(ckpt_path: str | None, trainer: pl.Trainer) -> str | None:
    """The checkpoint to resume from: a path, `last` = this run's checkpoints/last.ckpt, or `auto`
    = last.ckpt when it exists, else a fresh start (a requeued cluster job restarting itself)."""
    if ckpt_path is None:
        return None
    if ckpt_path in ("last", "auto"):
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        path = Path(folder or trainer.default_root_dir) / "last.ckpt"
        if ckpt_path == "auto" and not path.is_file():
            return None
        hint = (
            "give hydra.run.dir=<the run's folder> to continue a run, or ckpt_path=<a .ckpt file>"
        )
    else:
        path = Path(ckpt_path)
        hint = "give the path of a .ckpt file written by train (its run's checkpoints/ folder)"
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt_path}: {path} does not exist; {hint}")
    return str(path)


def check_resume(path: Path, encoder: str, task: str) -> None:
    """Refuse a checkpoint of another encoder or task before Lightning fails on tensor shapes.

    A resumed run is composed afresh from the command line, so it must repeat the first run's
    overrides; the error names them.
    """
    # Trusted: resuming means Lightning unpickles this run's own file in full right after.
    saved = read_checkpoint(path, trusted=True)
    if not isinstance(saved, Mapping) or "hyper_parameters" not in saved:
        raise ValueError(f"ckpt_path={path} is not a checkpoint written by train; resume from one")
    try:
        lightning_names(saved["hyper_parameters"], path, encoder, task)
    except ValueError as error:
        overrides = path.parent.parent / ".hydra" / "overrides.yaml"
        raise ValueError(
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
