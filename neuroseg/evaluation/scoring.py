"""Segmentation scores as pure numpy: confusion matrices, per-class IoU/Dice/precision/recall,
summaries, and the threshold sweep behind `tune_threshold`.

A score whose denominator is zero (class absent from truth and prediction) is NaN, not 0 or 1:
it is undefined, and summaries skip it and report how many values they used (`n`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from neuroseg.errors import InputError

METRICS = ("iou", "dice", "precision", "recall")
STATS = ("n", "mean", "std", "min", "max")


def confusion_matrix(
    truth: np.ndarray, pred: np.ndarray, num_classes: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """(K, K) int64 pixel counts, rows = truth class, columns = predicted class.

    `truth` and `pred` are (H, W) integer class maps in [0, K); `valid` (H, W) bool limits the
    count to scored pixels (e.g. not padding, or covered by a tile).
    """
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    if valid is not None:
        truth, pred = truth[valid], pred[valid]
    codes = truth.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(codes, minlength=num_classes**2).reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float64, NaN where the denominator is zero (score undefined)."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast_shapes(numerator.shape, denominator.shape), np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def iou_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Jaccard tp / (tp + fp + fn) of pixel counts of any shape; NaN where a class is absent
    from truth and prediction. The one IoU of training logs and evaluate's tables."""
    return _ratio(tp, np.add(np.add(tp, fp), fn))


def dice_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Dice 2tp / (2tp + fp + fn) of pixel counts of any shape; NaN where a class is absent."""
    return _ratio(np.multiply(tp, 2), np.add(np.add(np.multiply(tp, 2), fp), fn))


def class_scores(matrix: np.ndarray, class_id: int) -> dict[str, float]:
    """IoU, Dice, precision and recall of one class from a (K, K) confusion matrix."""
    tp = int(matrix[class_id, class_id])
    fn = int(matrix[class_id].sum()) - tp
    fp = int(matrix[:, class_id].sum()) - tp
    return {
        "iou": float(iou_from_counts(tp, fp, fn)),
        "dice": float(dice_from_counts(tp, fp, fn)),
        "precision": float(_ratio(tp, tp + fp)),
        "recall": float(_ratio(tp, tp + fn)),
    }


def score_row(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Flat `{metric}_{class}` scores for every foreground class (class_names[1:])."""
    row: dict[str, float] = {}
    for class_id, name in enumerate(class_names):
        if class_id == 0:
            continue
        for metric, value in class_scores(matrix, class_id).items():
            row[f"{metric}_{name}"] = value
    return row


def score_columns(class_names: Sequence[str]) -> list[str]:
    """Column names of `score_row`, in its order."""
    return [f"{metric}_{name}" for name in class_names[1:] for metric in METRICS]


def describe_values(values: Sequence[float]) -> dict[str, float]:
    """n (non-NaN count), mean, std (population), min, max of `values`; NaN stats when n is 0."""
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    if array.size == 0:
        return {"n": 0, **{stat: float("nan") for stat in STATS[1:]}}
    return {
        "n": int(array.size),
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
    }


def summarize(
    rows: Sequence[Mapping[str, object]], class_names: Sequence[str], level: str
) -> list[dict[str, object]]:
    """Summary rows (level, condition, class, metric, n, mean, std, min, max) of score rows.

    One block over all rows (condition "all"), then one per condition, in sorted order.
    """
    conditions = ["all", *sorted({str(row["condition"]) for row in rows})]
    summary = []
    for condition in conditions:
        subset = [row for row in rows if condition == "all" or row["condition"] == condition]
        for name in class_names[1:]:
            for metric in METRICS:
                values = [float(row[f"{metric}_{name}"]) for row in subset]  # type: ignore[arg-type]
                summary.append(
                    {"level": level, "condition": condition, "class": name, "metric": metric}
                    | describe_values(values)
                )
    return summary


def matrix_rows(matrix: np.ndarray, class_names: Sequence[str]) -> list[dict[str, object]]:
    """Confusion matrix as CSV rows: `truth` then one `pred_<class>` pixel count per class."""
    return [
        {
            "truth": name,
            **{f"pred_{other}": int(matrix[i, j]) for j, other in enumerate(class_names)},
        }
        for i, name in enumerate(class_names)
    ]


def threshold_counts(
    prob: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """(T, 3) int64 (tp, fp, fn) of `prob > t` against binary `truth`, for each threshold t.

    `prob` (H, W) float in [0, 1]; `truth` (H, W) 0/1. Sorting once makes every threshold cheap.
    """
    if valid is not None:
        prob, truth = prob[valid], truth[valid]
    prob = prob.ravel()
    positive = truth.ravel().astype(bool)
    pos_sorted = np.sort(prob[positive])
    neg_sorted = np.sort(prob[~positive])
    tp = pos_sorted.size - np.searchsorted(pos_sorted, thresholds, side="right")
    fp = neg_sorted.size - np.searchsorted(neg_sorted, thresholds, side="right")
    fn = pos_sorted.size - tp
    return np.stack([tp, fp, fn], axis=1).astype(np.int64)


def best_threshold(counts: Sequence[np.ndarray], thresholds: np.ndarray) -> tuple[float, float]:
    """(threshold, mean IoU) maximising the mean over images of per-image IoU.

    `counts` holds one (T, 3) array per image from `threshold_counts`. Images where IoU is
    undefined at a threshold are skipped at it; ties go to the lowest threshold.
    """
    if not counts:
        raise InputError("no images to tune the threshold on")
    stacked = np.stack(counts)  # (images, T, 3)
    iou = iou_from_counts(stacked[..., 0], stacked[..., 1], stacked[..., 2])
    defined = ~np.isnan(iou)
    mean_iou = np.where(
        defined.any(axis=0), np.nansum(iou, axis=0) / np.maximum(defined.sum(axis=0), 1), -1.0
    )
    best = int(np.argmax(mean_iou))
    return float(thresholds[best]), float(mean_iou[best])
