"""What a finished fit hands on: the metric a sweeper optimises, the checkpoint to test, and a
log line saying where the run's logs and best checkpoint are."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytorch_lightning as pl
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from neuroseg.errors import ChoiceError

log = logging.getLogger(__name__)


def optimized_value(metrics: Mapping[str, float], name: str | None) -> float | None:
    """The metric a sweeper optimises; None when `optimized_metric` is unset.

    A name that no stage logged raises instead of handing the sweeper None, which Optuna and
    similar sweepers would take as a failed or empty trial without saying why.
    """
    if name is None:
        return None
    if name not in metrics:
        raise ChoiceError(
            f"optimized_metric={name!r} was not logged by this run; logged: {sorted(metrics)}. "
            "Set optimized_metric to one of them (e.g. val/iou)"
        )
    return metrics[name]


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
