"""Jaccard (IoU) and Dice per class pooled over an epoch's pixels, padding excluded, summed across
processes. The scores come from `scoring.iou_from_counts`, the rule evaluate uses too."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from neuroseg.errors import UsageError
from neuroseg.evaluation.scoring import dice_from_counts, iou_from_counts
from neuroseg.task import get_task


def classes_from_logits(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Class map (N, H, W) int64 of logits (N, C, H, W): sigmoid > threshold (C == 1) or argmax."""
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits[:, 0].float()) > threshold).long()
    return logits.argmax(dim=1)


def classes_from_target(target: torch.Tensor) -> torch.Tensor:
    """Class map (N, H, W) int64 from a batch target: binary (N, 1, H, W) float or (N, H, W) int."""
    return target[:, 0].long() if target.ndim == 4 else target.long()


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(true pos., false pos., false neg.), each (num_classes,) int64, counted on valid pixels only.

    `pred` and `target` are (N, H, W) int class maps, `valid` (N, H, W) bool. Masks rather than
    boolean indexing keep the counts on the device: no host sync per batch.
    """
    classes = torch.arange(num_classes, device=pred.device)[:, None, None, None]
    is_pred = (pred[None] == classes) & valid[None]
    is_true = (target[None] == classes) & valid[None]
    dims = (1, 2, 3)
    true_pos = (is_pred & is_true).sum(dim=dims)
    return true_pos, is_pred.sum(dim=dims) - true_pos, is_true.sum(dim=dims) - true_pos


class SegmentationMetrics(Metric):
    """Per-class IoU and Dice of one stage pooled over pixels, and their means over classes.

    `update` takes a batch's logits, target and valid mask; `compute` returns
    `{"iou": mean, "iou_neurons": ..., "dice": mean, "dice_neurons": ...}` from the pixel counts
    of every batch since the last reset ("pooled over pixels": one big image, not a mean over
    images as evaluate's `image_*` scores). A class absent from truth and prediction scores NaN,
    and the mean skips it. The counts are summed across processes (DDP) when computed.
    """

    full_state_update = False

    def __init__(self, task: str, threshold: float = 0.5) -> None:
        super().__init__()
        spec = get_task(task)
        if not 0.0 < threshold < 1.0:
            raise UsageError(f"model.threshold={threshold}: must lie strictly between 0 and 1")
        self.class_names = spec.class_names
        self.threshold = float(threshold)
        for name in ("tp", "fp", "fn"):
            self.add_state(name, torch.zeros(spec.num_classes, dtype=torch.long), "sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> None:
        """Add a batch: logits (N, C, H, W), target as the DataModule yields it, valid (N, H, W)."""
        pred = classes_from_logits(logits, self.threshold)
        counts = confusion_counts(pred, classes_from_target(target), valid, len(self.class_names))
        self.tp += counts[0]
        self.fp += counts[1]
        self.fn += counts[2]

    def compute(self) -> dict[str, torch.Tensor]:
        """Scores named `iou`, `iou_<class>`, `dice`, `dice_<class>` (foreground classes only)."""
        counts = [count.cpu().numpy() for count in (self.tp, self.fp, self.fn)]
        scores: dict[str, torch.Tensor] = {}
        for metric, per_class in (
            ("iou", iou_from_counts(*counts)),
            ("dice", dice_from_counts(*counts)),
        ):
            foreground = per_class[1:]
            mean = np.nanmean(foreground) if not np.isnan(foreground).all() else np.nan
            scores[metric] = torch.tensor(float(mean), device=self.tp.device)
            for index, name in enumerate(self.class_names[1:], start=1):
                scores[f"{metric}_{name}"] = torch.tensor(
                    float(per_class[index]), device=self.tp.device
                )
        return scores
