"""Train a U-Net and test its best checkpoint: python -m neuroseg.train encoder=vgg16 task=axons."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from neuroseg.cli import command
from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.data.settings import DataSettings, checked
from neuroseg.runtime import resolve_precision, set_threads
from neuroseg.training.callbacks import IMAGE_KEYS
from neuroseg.training.module import SegmentationModule
from neuroseg.training.outcome import best_checkpoint, optimized_value, report
from neuroseg.training.resume import check_named_resume, fine_tune_weights, fit_ckpt_path

log = logging.getLogger(__name__)


@command("train")
def main(cfg: DictConfig) -> float | None:
    return optimized_value(train(cfg), cfg.get("optimized_metric"))


def plain(node: Any) -> Any:
    """A config section as plain values (what checkpoints and library functions take)."""
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the logged metrics for sweeps and tests."""
    ckpt_path, trusted = cfg.get("ckpt_path"), cfg.trust_checkpoint
    encoder, task = cfg.encoder.name, cfg.task.name
    check_named_resume(ckpt_path, encoder, task, trusted)
    data = checked(cfg.data, DataSettings, "data")
    set_threads(cfg.get("threads"))
    start = fine_tune_weights(cfg.get("init_from"), ckpt_path, encoder, task, trusted)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = NeuroSegDataModule(**data, task=task, sample=plain(cfg.get("sample")))
    options = {key: value for key, value in plain(cfg.model).items() if key not in IMAGE_KEYS}
    model = SegmentationModule(
        encoder=encoder,
        task=task,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        # Fine-tuning overwrites every weight: no ImageNet download for the encoder.
        encoder_weights=None if start is not None else cfg.encoder.weights,
        offline_fallback=cfg.encoder.offline_fallback,
        **options,
    )
    callbacks = [instantiate(node) for node in (cfg.get("callbacks") or {}).values() if node]
    loggers = [instantiate(node) for node in (cfg.get("logger") or {}).values() if node]
    precision = resolve_precision(cfg.trainer.accelerator, cfg.trainer.precision)
    trainer: pl.Trainer = instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision
    )
    resume = fit_ckpt_path(ckpt_path, trainer)
    if start is not None:
        # ckpt_path=auto with init_from: a requeued job's own last.ckpt, if any, replaces these.
        model.model.load_state_dict(start)
        log.info("starting from init_from=%s: fresh optimiser and schedule", cfg.init_from)
    # Lightning reads the file again: as safely as the check did.
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=not trusted)
    metrics = dict(trainer.callback_metrics)
    if cfg.get("test"):
        trainer.test(model, datamodule=datamodule, ckpt_path=best_checkpoint(trainer))
        metrics.update(trainer.callback_metrics)
    report(trainer)
    return {name: float(value) for name, value in metrics.items()}


if __name__ == "__main__":
    main()
