"""SegmentationModule: the U-Net with its loss, metrics and optimiser."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.optim import Optimizer
from torchmetrics import MeanMetric

from neuroseg.models.ternausnet import build_model
from neuroseg.task import get_task
from neuroseg.training.losses import SegmentationLoss
from neuroseg.training.metrics import SegmentationMetrics
from neuroseg.training.resume import check_same_network

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]
Batch = dict[str, Any]


class SegmentationModule(pl.LightningModule):
    """UNet11/UNet16 trained with the original's loss; scores IoU and Dice on whole tiles.

    `encoder` is a key of ENCODERS (vgg11, vgg16), started from `encoder_weights` ("imagenet", a
    .pth path, or None for random; `offline_fallback`: random with a warning when ImageNet
    weights cannot be had); `task` is "binary" or "axons"; `optimizer` and `scheduler` are
    partials awaiting the parameters and the optimiser; `loss` holds SegmentationLoss's
    keywords (alpha, class_weights). The other arguments are conf/model/default.yaml's keys.
    All but the partials are saved in checkpoints, so they must be plain values (no OmegaConf
    containers, no Path): a checkpoint then loads without trust. Checkpoints written before
    these arguments were typed hold `encoder` as a dict of build_model's keys; evaluate, predict
    and resuming read both (models.checkpoint.lightning_names).
    """

    def __init__(
        self,
        encoder: str,
        task: str,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        encoder_weights: str | None = None,
        offline_fallback: bool = False,
        scheduler_monitor: str = "val/iou",
        loss: Mapping[str, float | Sequence[float] | None] | None = None,
        threshold: float = 0.5,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # The partials live in the run's Hydra snapshot; a checkpoint keeps plain values only.
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        spec = get_task(task)
        self.model = build_model(encoder, spec.out_channels, encoder_weights, offline_fallback)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if compile:
            # In place, so state_dict keys stay `model.*` for evaluation and legacy tools.
            self.model.compile()
        self.loss = SegmentationLoss(task, **(loss or {}))
        # One metric object per stage: validation inside a training epoch keeps its own counts.
        self.train_metrics = SegmentationMetrics(task, threshold)
        self.val_metrics = SegmentationMetrics(task, threshold)
        self.test_metrics = SegmentationMetrics(task, threshold)
        # Val/test loss: the mean over tiles, summed across processes like the scores, so it
        # depends neither on the batch size nor on how tiles are shared out among DDP ranks.
        self.val_loss = MeanMetric()
        self.test_loss = MeanMetric()
        self.make_optimizer = optimizer
        self.make_scheduler = scheduler

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, H, W) of normalised images (N, 3, H, W), H and W multiples of 32."""
        if self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.model(image)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming: refuse a checkpoint of another encoder or task before its tensors fail to fit
        (Lightning calls this before loading the weights, whichever ckpt_path found the file)."""
        path = Path(str(getattr(self._trainer, "ckpt_path", None) or "checkpoint"))
        hparams = checkpoint.get("hyper_parameters", {})
        check_same_network(hparams, path, self.hparams.encoder, self.hparams.task)

    def _metrics(self, stage: str) -> SegmentationMetrics:
        return getattr(self, f"{stage}_metrics")

    def _step(self, batch: Batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits) of a batch; the loss is logged and the stage's metrics updated."""
        logits = self(batch["image"])
        target, valid = batch["target"], batch["valid"]
        self._metrics(stage).update(logits.detach(), target, valid)
        if stage == "train":
            loss = self.loss(logits, target, valid)
            # Per step on this process only, for the logger: a prog_bar value would be copied to
            # the host after every step (training.progress.ProgressBar shows it on logging steps).
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False)
            return loss, logits
        # The soft Jaccard term is not a sum over tiles, so a batch's loss is not the mean of its
        # tiles' losses: score each tile alone.
        tiles = zip(logits.split(1), target.split(1), valid.split(1), strict=True)
        loss = torch.stack([self.loss(*tile) for tile in tiles]).detach()
        mean = getattr(self, f"{stage}_loss")
        mean.update(loss)
        # A Metric object: Lightning logs its compute(), summed across processes at epoch end.
        self.log(f"{stage}/loss", mean, on_step=False, on_epoch=True, prog_bar=True)
        return loss.mean(), logits

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Score the batch; its logits go to callbacks (`callbacks.ValidationImages` draws them)."""
        return {"logits": self._step(batch, "val")[1].detach()}

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def _epoch_end(self, stage: str) -> None:
        """Log the stage's epoch scores (computed across processes) and start afresh."""
        metrics = self._metrics(stage)
        scores = {f"{stage}/{name}": value for name, value in metrics.compute().items()}
        # compute() already summed the counts across processes, so every rank holds the same
        # scores; sync_dist averages equal values (a no-op) and tells Lightning they are global.
        self.log_dict(scores, sync_dist=True)
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self._epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def configure_optimizers(self) -> Optimizer | dict[str, Any]:
        """The configured optimiser, and its scheduler stepped once per epoch if one is set."""
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        scheduler = {
            "scheduler": self.make_scheduler(optimizer),
            "interval": "epoch",
            "monitor": self.hparams.scheduler_monitor,
        }
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
