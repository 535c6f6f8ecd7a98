"""The original's loss on tiny tensors: hand-computed values, padding ignored, class weights."""

from __future__ import annotations

import math

import pytest
import torch

from neuroseg.training.losses import SegmentationLoss, binary_loss, multiclass_loss, soft_jaccard


def all_valid(*shape: int) -> torch.Tensor:
    return torch.ones(*shape, dtype=torch.bool)


def test_soft_jaccard_by_hand() -> None:
    probs = torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])  # (1, 1, 2, 2)
    onehot = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    # intersection 0.5 + 1 = 1.5; union 2 + 2 - 1.5 = 2.5
    assert soft_jaccard(probs, onehot, all_valid(1, 2, 2)).item() == pytest.approx(1.5 / 2.5)


def test_binary_loss_by_hand() -> None:
    logits = torch.zeros(1, 1, 2, 2)  # sigmoid 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # BCE = log 2 per pixel; soft Jaccard = 0.5 / (2 + 1 - 0.5) = 0.2
    expected = 0.5 * math.log(2) - 0.5 * math.log(0.2)
    loss = binary_loss(logits, target, all_valid(1, 2, 2), alpha=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    only_bce = binary_loss(logits, target, all_valid(1, 2, 2), alpha=0.0)
    assert only_bce.item() == pytest.approx(math.log(2), rel=1e-6)


def test_multiclass_loss_by_hand() -> None:
    logits = torch.zeros(1, 3, 1, 2)  # softmax 1/3 everywhere
    target = torch.tensor([[[0, 2]]])
    # CE = log 3; class 0 and 2: inter 1/3, union 2/3 + 1 - 1/3 = 4/3 -> 1/4; class 1: eps/(2/3)
    eps = 1e-15
    jaccards = [0.25, eps / (2 / 3 + eps), 0.25]
    expected = 0.5 * math.log(3) - 0.5 * sum(math.log(j) for j in jaccards)
    loss = multiclass_loss(logits, target, all_valid(1, 1, 2), alpha=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("task", ["binary", "axons"])
def test_padding_is_ignored(task: str) -> None:
    torch.manual_seed(0)
    channels = 1 if task == "binary" else 3
    logits = torch.randn(2, channels, 4, 4)
    target = torch.randint(0, channels if channels > 1 else 2, (2, 4, 4))
    target = target[:, None].float() if task == "binary" else target
    valid = all_valid(2, 4, 4)
    valid[:, :, 2:] = False
    loss = SegmentationLoss(task)
    before = loss(logits, target, valid)
    # Whatever the padded pixels hold (logits or labels), the loss does not move.
    logits[..., 2:] = 50.0
    target[..., 2:] = 1
    assert loss(logits, target, valid).item() == pytest.approx(before.item(), rel=1e-6)
    cropped = loss(logits[..., :2].contiguous(), target[..., :2].contiguous(), valid[..., :2])
    assert cropped.item() == pytest.approx(before.item(), rel=1e-6)


def test_class_weights_weigh_cross_entropy() -> None:
    logits = torch.tensor([[[[2.0, -1.0]]]])
    target = torch.tensor([[[[1.0, 0.0]]]])
    valid = all_valid(1, 1, 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weighted = (bce[0, 0, 0, 0] * 3 + bce[0, 0, 0, 1] * 1) / 4
    loss = SegmentationLoss("binary", alpha=0.0, class_weights=[1.0, 3.0])
    assert loss(logits, target, valid).item() == pytest.approx(weighted.item(), rel=1e-6)
    three = torch.randn(1, 3, 2, 2)
    labels = torch.tensor([[[0, 1], [2, 2]]])
    expected = torch.nn.functional.cross_entropy(three, labels, weight=torch.tensor([1.0, 2, 3]))
    loss3 = SegmentationLoss("axons", alpha=0.0, class_weights=[1.0, 2.0, 3.0])
    assert loss3(three, labels, all_valid(1, 2, 2)).item() == pytest.approx(expected.item())


def test_loss_has_gradients_in_bf16() -> None:
    logits = torch.randn(1, 3, 4, 4, dtype=torch.bfloat16, requires_grad=True)
    loss = SegmentationLoss("axons")(logits, torch.randint(0, 3, (1, 4, 4)), all_valid(1, 4, 4))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(logits.grad.float()).all()


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ValueError, match="model.loss.class_weights"):
        SegmentationLoss("axons", class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="model.loss.alpha"):
        SegmentationLoss("binary", alpha=1.5)
    with pytest.raises(KeyError, match="binary"):
        SegmentationLoss("cells")
