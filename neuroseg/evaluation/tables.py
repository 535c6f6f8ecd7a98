"""Evaluate's numbers from re-assembled predictions: per-image and per-tile score rows, the summed
confusion matrix, summaries, metric names that say their reduction, and the printed table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuroseg.evaluation.assembly import ImagePrediction
from neuroseg.evaluation.scoring import STATS, confusion_matrix, score_row, summarize
from neuroseg.inference.predictor import class_map
from neuroseg.inference.settings import PostprocessSettings
from neuroseg.task import Task

SUMMARY_COLUMNS = ("level", "condition", "class", "metric", *STATS)


@dataclass(frozen=True)
class ScoredImage:
    """One re-assembled image, its (H, W) uint8 class map and its scores."""

    image: ImagePrediction
    mask: np.ndarray
    row: dict[str, object]
    tile_rows: list[dict[str, object]]
    matrix: np.ndarray


@dataclass
class SplitScores:
    """Score rows of a split, filled image by image, and its summed (K, K) confusion matrix."""

    num_classes: int
    image_rows: list[dict[str, object]] = field(default_factory=list)
    tile_rows: list[dict[str, object]] = field(default_factory=list)
    matrix: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def add(self, scored: ScoredImage) -> None:
        self.image_rows.append(scored.row)
        self.tile_rows.extend(scored.tile_rows)
        self.matrix += scored.matrix


def score_image(
    image: ImagePrediction, task: Task, threshold: float, options: PostprocessSettings
) -> ScoredImage:
    """Class maps of `image` and its tiles cut at `threshold`, scored against their truth."""
    tile_rows = []
    for tile in image.tiles:
        mask = class_map(tile.probs, task, threshold, options)
        matrix = confusion_matrix(tile.truth, mask, task.num_classes)
        tile_rows.append(
            {"tile": tile.tile, "image_id": image.image_id, "condition": image.condition}
            | score_row(matrix, task.class_names)
        )
    mask = class_map(image.probs, task, threshold, options)
    matrix = confusion_matrix(image.truth, mask, task.num_classes, image.covered)
    row = {"image_id": image.image_id, "condition": image.condition}
    return ScoredImage(image, mask, row | score_row(matrix, task.class_names), tile_rows, matrix)


def summary_rows(scores: SplitScores, class_names: Sequence[str]) -> list[dict[str, object]]:
    """summary.csv: per-image statistics, then per-tile ones."""
    summary = summarize(scores.image_rows, class_names, "image")
    return summary + summarize(scores.tile_rows, class_names, "tile")


def format_table(summary: Sequence[dict], level: str = "image") -> str:
    """Markdown table of the summary rows of one level (printed and logged to TensorBoard)."""
    lines = [
        f"Scores per {level}: n, mean, std, min and max over {level}s",
        "",
        "| condition | class | metric | n | mean | std | min | max |",
        "|---" * 8 + "|",
    ]
    for row in summary:
        if row["level"] == level:
            stats = " | ".join(f"{row[s]:.4f}" for s in STATS[1:])
            lines.append(
                f"| {row['condition']} | {row['class']} | {row['metric']} | {row['n']} | {stats} |"
            )
    return "\n".join(lines)


def split_metrics(
    split: str, summary: Sequence[dict], matrix: np.ndarray, class_names: Sequence[str]
) -> dict[str, float]:
    """Scores named by their reduction: `<split>/image_<metric>[_<class>]` is the mean over
    images of per-image scores; `<split>/<metric>[_<class>]` is pooled over every pixel of the
    split (the summed confusion matrix), which is what training logs as `val|test/iou`.
    """
    metrics = {
        f"{split}/image_{row['metric']}_{row['class']}": float(row["mean"])
        for row in summary
        if row["level"] == "image" and row["condition"] == "all"
    }
    metrics |= {f"{split}/{name}": value for name, value in score_row(matrix, class_names).items()}
    for prefix in ("image_", ""):
        values = [metrics[f"{split}/{prefix}iou_{name}"] for name in class_names[1:]]
        defined = [value for value in values if not np.isnan(value)]
        metrics[f"{split}/{prefix}iou"] = float(np.mean(defined)) if defined else float("nan")
    return metrics
