"""Lightning callbacks of neuroseg: validation tiles drawn to TensorBoard."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from neuroseg.inference.overlay import CLASS_COLORS, gray_to_rgb8, overlay
from neuroseg.training.metrics import classes_from_logits, classes_from_target

# conf/model keys that configure ValidationImages (through conf/callbacks), kept under `model` so
# `model.image_every_n_epochs=...` works as it always has; they are no SegmentationModule argument.
IMAGE_KEYS = ("image_every_n_epochs", "image_count")


def display_gray(image: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """(H, W) uint8 of a normalised (3, H, W) image, stretched over its valid pixels."""
    gray = image[0].float()
    inside = gray[valid] if valid.any() else gray.flatten()
    low, high = inside.min(), inside.max()
    unit = ((gray - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)
    return (unit * 255).round().to(torch.uint8).cpu().numpy()


def tile_panel(
    image: torch.Tensor, target: torch.Tensor, pred: torch.Tensor, valid: torch.Tensor
) -> np.ndarray:
    """(H, 3W, 3) uint8: input | ground-truth overlay | prediction overlay of one tile."""
    gray = display_gray(image, valid)
    truth, predicted = target.cpu().numpy(), pred.cpu().numpy()
    return np.concatenate(
        [
            gray_to_rgb8(gray),
            overlay(gray, truth, CLASS_COLORS),
            overlay(gray, predicted, CLASS_COLORS),
        ],
        axis=1,
    )


class ValidationImages(pl.Callback):
    """Input | truth | prediction panels of the first `count` validation tiles, to TensorBoard.

    Every `every_n_epochs` epochs (0: never), on rank zero, when a TensorBoard logger is set.
    Drawing is a callback's job, not the model's: the LightningModule only returns its logits
    from `validation_step`, and a run without TensorBoard pays nothing. Binary logits are cut at
    the module's `threshold`, as its metrics are.
    """

    def __init__(self, every_n_epochs: int = 5, count: int = 4) -> None:
        if every_n_epochs < 0 or count < 0:
            raise ValueError(
                f"model.image_every_n_epochs={every_n_epochs}, model.image_count={count}: "
                "choose 0 (off) or more"
            )
        self.every_n_epochs = int(every_n_epochs)
        self.count = int(count)
        self.logged = 0

    @staticmethod
    def tensorboard(trainer: pl.Trainer) -> TensorBoardLogger | None:
        """The run's TensorBoard logger, if one is configured."""
        return next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)

    def wanted(self, trainer: pl.Trainer) -> bool:
        """True on rank zero in a drawing epoch until `count` tiles are drawn."""
        return (
            self.every_n_epochs > 0
            and trainer.current_epoch % self.every_n_epochs == 0
            and not trainer.sanity_checking
            and trainer.is_global_zero
            and self.logged < self.count
            and self.tensorboard(trainer) is not None
        )

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.logged = 0

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self.wanted(trainer) or not isinstance(outputs, dict) or "logits" not in outputs:
            return
        threshold = float(pl_module.hparams.get("threshold", 0.5))
        pred = classes_from_logits(outputs["logits"], threshold)
        target = classes_from_target(batch["target"])
        writer = self.tensorboard(trainer).experiment
        count = min(len(pred), self.count - self.logged)
        for index in range(count):
            panel = tile_panel(
                batch["image"][index], target[index], pred[index], batch["valid"][index]
            )
            tag = f"val_tiles/{batch['tile'][index]}"
            writer.add_image(tag, panel, global_step=trainer.global_step, dataformats="HWC")
        self.logged += count
