"""The training progress bar, reading the step loss only on the steps the logger writes."""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar, showing per-step values without a host sync after every batch.

    A value logged with `prog_bar=True` on every step is copied to the host by Lightning after
    each batch; on a GPU that read waits for the step to finish, so the next step's kernels
    cannot be queued meanwhile. The module therefore logs its step loss for the logger only, and
    this bar shows `step_metrics` (read from `trainer.callback_metrics`) when `global_step` is a
    multiple of `trainer.log_every_n_steps`: the steps on which the logger reads them anyway.
    Between those steps the bar shows the last value read; its count moves every `refresh_rate`
    batches as usual.
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

    def get_metrics(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> dict[str, int | str | float | dict[str, float]]:
        if trainer.training and trainer.global_step % max(trainer.log_every_n_steps, 1) == 0:
            logged = trainer.callback_metrics
            self.shown = {name: float(logged[name]) for name in self.step_metrics if name in logged}
        return {**super().get_metrics(trainer, pl_module), **self.shown}
