"""IoU and Dice per class against numpy and torchmetrics, padding excluded, threshold honoured."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from neuroseg.evaluation.scoring import class_scores, confusion_matrix
from neuroseg.training.metrics import SegmentationMetrics, classes_from_logits


def numpy_scores(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, cls: int) -> tuple:
    p, t = (pred == cls)[valid], (truth == cls)[valid]
    inter, union = np.sum(p & t), np.sum(p | t)
    return inter / union, 2 * inter / (p.sum() + t.sum())


def test_axons_scores_match_numpy_over_batches() -> None:
    rng = np.random.default_rng(0)
    metric = SegmentationMetrics("axons")
    preds, truths, valids = [], [], []
    for _ in range(3):  # scores pool all pixels of the epoch, not a mean of batch scores
        logits = torch.from_numpy(rng.normal(size=(2, 3, 5, 7)).astype(np.float32))
        truth = rng.integers(0, 3, size=(2, 5, 7))
        valid = rng.random((2, 5, 7)) > 0.3
        metric.update(logits, torch.from_numpy(truth), torch.from_numpy(valid))
        preds.append(logits.argmax(1).numpy())
        truths.append(truth)
        valids.append(valid)
    pred, truth, valid = (np.concatenate(a) for a in (preds, truths, valids))
    scores = metric.compute()
    assert set(scores) == {"iou", "iou_neurons", "iou_axons", "dice", "dice_neurons", "dice_axons"}
    for cls, name in ((1, "neurons"), (2, "axons")):
        iou, dice = numpy_scores(pred, truth, valid, cls)
        assert scores[f"iou_{name}"].item() == pytest.approx(iou)
        assert scores[f"dice_{name}"].item() == pytest.approx(dice)
    assert scores["iou"].item() == pytest.approx(
        (scores["iou_neurons"].item() + scores["iou_axons"].item()) / 2
    )


def test_agrees_with_torchmetrics_jaccard_with_ignore_index() -> None:
    torch.manual_seed(1)
    logits, truth = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    valid = torch.rand(2, 8, 8) > 0.2
    metric = SegmentationMetrics("axons")
    metric.update(logits, truth, valid)
    reference = MulticlassJaccardIndex(3, average="none", ignore_index=-1)
    per_class = reference(logits.argmax(1), torch.where(valid, truth, -1))
    assert metric.compute()["iou_axons"].item() == pytest.approx(per_class[2].item())


def test_binary_threshold_and_padding_by_hand() -> None:
    # sigmoid of the logits: 0.27, 0.62, 0.88, 0.5 (pixel 3 is padding)
    logits = torch.tensor([[[[-1.0, 0.5], [2.0, 0.0]]]])
    target = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    assert classes_from_logits(logits, 0.5).tolist() == [[[0, 1], [1, 0]]]
    default = SegmentationMetrics("binary")
    default.update(logits, target, valid)
    scores = default.compute()  # pred {1, 2}, truth {0, 1}: tp 1, fp 1, fn 1
    assert set(scores) == {"iou", "iou_neurons", "dice", "dice_neurons"}
    assert scores["iou_neurons"].item() == pytest.approx(1 / 3)
    assert scores["dice_neurons"].item() == pytest.approx(0.5)
    low = SegmentationMetrics("binary", threshold=0.2)
    low.update(logits, target, valid)  # pred {0, 1, 2}: tp 2, fp 1
    assert low.compute()["iou"].item() == pytest.approx(2 / 3)


def test_absent_class_scores_nan_as_in_evaluate_and_reset_clears() -> None:
    metric = SegmentationMetrics("binary")
    metric.update(torch.full((1, 1, 2, 2), -5.0), torch.zeros(1, 1, 2, 2), torch.ones(1, 2, 2) > 0)
    assert math.isnan(metric.compute()["iou"].item())  # undefined, as evaluate's tables say
    metric.reset()
    metric.update(torch.full((1, 1, 2, 2), 5.0), torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2) > 0)
    assert metric.compute()["iou"].item() == 1.0


def test_bad_threshold_names_the_key() -> None:
    with pytest.raises(ValueError, match="model.threshold"):
        SegmentationMetrics("binary", threshold=1.0)


def test_class_mean_skips_a_class_absent_from_truth_and_prediction() -> None:
    metric = SegmentationMetrics("axons")
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 1, 0, :2] = 5.0  # neurons predicted at x 0, 1; axons nowhere
    target = torch.tensor([[[1, 0, 0, 0]]])
    metric.update(logits, target, torch.ones(1, 1, 4, dtype=torch.bool))
    scores = metric.compute()
    assert math.isnan(scores["iou_axons"].item())
    assert scores["iou"].item() == pytest.approx(scores["iou_neurons"].item()) == pytest.approx(0.5)


def test_training_and_evaluate_score_the_same_counts_alike() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    metric = SegmentationMetrics("axons")
    metric.update(logits, target, valid)
    training = metric.compute()
    matrix = confusion_matrix(target.numpy(), logits.argmax(1).numpy(), 3)
    for class_id, name in ((1, "neurons"), (2, "axons")):
        scores = class_scores(matrix, class_id)
        assert training[f"iou_{name}"].item() == pytest.approx(scores["iou"])
        assert training[f"dice_{name}"].item() == pytest.approx(scores["dice"])
