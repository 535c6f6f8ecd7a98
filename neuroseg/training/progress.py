"""The training progress bar, reading the step loss only on the steps the logger writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, showing per-step values without a host sync after every batch.

    A value logged with `prog_bar=True` on every step is copied to the host by Lightning after
    each batch; on a GPU that read waits for the step to finish, so the next step's kernels
    cannot be queued meanwhile. The module therefore logs its step loss for the logger only, and
    this bar reads `step_metrics` from `trainer.callback_metrics` once per optimizer step that
    is a multiple of `trainer.log_every_n_steps` (the steps on which the logger reads them
    anyway) and at the end of each epoch. Between reads it shows the last value read; its count
    moves every `refresh_rate` batches as usual.
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        step_metrics: Sequence[str] = ("train/loss",),
    ) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.step_metrics = tuple(step_metrics)
        self.shown: dict[str, float] = {}
        self.read_at_step = -1

    def read(self, trainer: pl.Trainer) -> None:
        """Copy `step_metrics` to the host (one sync) unless done at this optimizer step or the
        bar is off (other DDP ranks, enable_progress_bar=false)."""
        if not self.is_enabled or trainer.global_step == self.read_at_step:
            return
        logged = trainer.callback_metrics
        self.shown = {name: float(logged[name]) for name in self.step_metrics if name in logged}
        self.read_at_step = trainer.global_step

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        every, step = trainer.log_every_n_steps, trainer.global_step
        if every > 0 and step > 0 and step % every == 0:
            self.read(trainer)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > 0:
            self.read(trainer)
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        return {**super().get_metrics(trainer, pl_module), **self.shown}
