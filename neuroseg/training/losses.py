"""The original's loss: (1 - alpha) * cross-entropy - alpha * log(soft Jaccard), minus padding."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neuroseg.task import get_task

# The original's smoothing: an empty class with an empty prediction scores log(1) = 0.
EPS = 1e-15


def soft_jaccard(
    probs: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """Soft Jaccard per channel (C,) in (0, 1] over the whole batch, valid pixels only.

    `probs` and `onehot` are (N, C, H, W) float in [0, 1]; `valid` is (N, H, W) bool. Summing over
    the batch (not per image) is what the original did; it keeps empty tiles from dominating.
    """
    weight = valid[:, None].to(probs.dtype)
    intersection = (probs * onehot * weight).sum(dim=(0, 2, 3))
    union = (probs * weight).sum(dim=(0, 2, 3)) + (onehot * weight).sum(dim=(0, 2, 3))
    return (intersection + eps) / (union - intersection + eps)


def weighted_mean(
    pixel_loss: torch.Tensor, pixel_weight: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """Scalar sum(w * loss) / sum(w) over (N, H, W), as torch's class-weighted cross-entropy."""
    return (pixel_loss * pixel_weight).sum() / pixel_weight.sum().clamp_min(eps)


def jaccard_ce_loss(
    pixel_loss: torch.Tensor,
    labels: torch.Tensor,
    probs: torch.Tensor,
    onehot: torch.Tensor,
    valid: torch.Tensor,
    alpha: float,
    class_weights: torch.Tensor | None,
    eps: float = EPS,
) -> torch.Tensor:
    """Scalar (1 - alpha) * mean cross-entropy - alpha * sum over channels of log(soft Jaccard).

    The body both tasks share. `pixel_loss` (N, H, W) float is the per-pixel cross-entropy,
    `labels` (N, H, W) int64 the class of each pixel (indexes `class_weights`, (K,) float),
    `probs` and `onehot` (N, C, H, W) float in [0, 1], `valid` (N, H, W) bool (padding False).
    """
    weight = valid.float()
    if class_weights is not None:
        weight = weight * class_weights[labels]
    jaccard = soft_jaccard(probs, onehot, valid, eps)
    return (1 - alpha) * weighted_mean(pixel_loss, weight, eps) - alpha * torch.log(jaccard).sum()


def binary_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    alpha: float = 0.5,
    class_weights: torch.Tensor | None = None,
    eps: float = EPS,
) -> torch.Tensor:
    """Scalar (1 - alpha) * BCE-with-logits - alpha * log(soft Jaccard of the neurons).

    `logits` (N, 1, H, W) any float; `target` (N, 1, H, W) float 0/1; `valid` (N, H, W) bool;
    `class_weights` (2,) float weighs background and neuron pixels in the BCE term.
    """
    logits, target = logits.float(), target.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")[:, 0]
    labels = target[:, 0].long()
    probs = torch.sigmoid(logits)
    return jaccard_ce_loss(bce, labels, probs, target, valid, alpha, class_weights, eps)


def multiclass_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    alpha: float = 0.5,
    class_weights: torch.Tensor | None = None,
    eps: float = EPS,
) -> torch.Tensor:
    """Scalar (1 - alpha) * cross-entropy - alpha * sum over classes of log(soft Jaccard).

    `logits` (N, C, H, W) any float; `target` (N, H, W) int64 in [0, C); `valid` (N, H, W) bool;
    `class_weights` (C,) float weighs each class's pixels in the cross-entropy term.
    """
    logits = logits.float()
    num_classes = logits.shape[1]
    # Padding may hold any label; point it at class 0 so indexing is safe, its weight is zero.
    target = torch.where(valid, target, torch.zeros_like(target))
    cross_entropy = F.cross_entropy(logits, target, reduction="none")
    # Comparison, not F.one_hot: one_hot checks the label range on the host (a sync per batch).
    classes = torch.arange(num_classes, device=target.device)[None, :, None, None]
    onehot = (target[:, None] == classes).float()
    probs = torch.softmax(logits, dim=1)
    return jaccard_ce_loss(cross_entropy, target, probs, onehot, valid, alpha, class_weights, eps)


class SegmentationLoss(nn.Module):
    """The task's loss as a module; arguments: `task` and conf/model/default.yaml's `loss` keys."""

    def __init__(
        self, task: str, alpha: float = 0.5, class_weights: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        spec = get_task(task)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"model.loss.alpha={alpha}: must lie in [0, 1] (0.5 as the original)")
        if class_weights is not None and len(class_weights) != spec.num_classes:
            raise ValueError(
                f"model.loss.class_weights={list(class_weights)}: task {task} needs "
                f"{spec.num_classes} weights, one per class {list(spec.class_names)}"
            )
        self.binary = spec.out_channels == 1
        self.alpha = float(alpha)
        weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """Scalar loss of a batch as the DataModule yields it (see the functions above)."""
        loss = binary_loss if self.binary else multiclass_loss
        return loss(logits, target, valid, self.alpha, self.class_weights)
