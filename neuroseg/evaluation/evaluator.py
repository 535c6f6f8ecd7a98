"""Score a checkpoint on a prepared split: optional threshold tuning on val, per-image and per-tile
scores, and the files evaluate writes (CSV tables, masks, overlays, TensorBoard scalars)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.tensorboard import SummaryWriter

from neuroseg.evaluation.assembly import ImagePrediction, image_count, predict_split
from neuroseg.evaluation.scoring import matrix_rows, score_columns
from neuroseg.evaluation.settings import EvaluationSettings
from neuroseg.evaluation.tables import (
    SUMMARY_COLUMNS,
    ScoredImage,
    SplitScores,
    format_table,
    score_image,
    split_metrics,
    summary_rows,
)
from neuroseg.evaluation.threshold import replay_split, tune_threshold
from neuroseg.inference.overlay import overlay
from neuroseg.inference.predictor import load_settings_model
from neuroseg.inference.settings import InferenceSettings, OverlaySettings
from neuroseg.io import write_csv, write_json, write_png
from neuroseg.models.checkpoint import threshold_path
from neuroseg.report.evaluation_page import write_evaluation_report
from neuroseg.runtime import progress_bar, set_threads
from neuroseg.task import Task

log = logging.getLogger(__name__)


def write_image_files(output: Path, scored: ScoredImage, style: OverlaySettings) -> None:
    """masks/<image_id>.png and overlays/<image_id>.png (truth outlined) of one scored image."""
    image = scored.image
    write_png(output / "masks" / f"{image.image_id}.png", scored.mask)
    drawn = overlay(
        image.gray,
        scored.mask,
        colors=style.colors,
        alpha=style.alpha,
        truth=image.truth,
        outline_color=style.outline_color,
    )
    write_png(output / "overlays" / f"{image.image_id}.png", drawn)


def write_score_tables(output: Path, scores: SplitScores, summary: list[dict], task: Task) -> None:
    """per_image.csv, per_tile.csv, summary.csv and confusion_matrix.csv."""
    columns = score_columns(task.class_names)
    write_csv(output / "per_image.csv", scores.image_rows, ("image_id", "condition", *columns))
    write_csv(
        output / "per_tile.csv", scores.tile_rows, ("tile", "image_id", "condition", *columns)
    )
    write_csv(output / "summary.csv", summary, SUMMARY_COLUMNS)
    matrix_columns = ("truth", *(f"pred_{name}" for name in task.class_names))
    rows = matrix_rows(scores.matrix, task.class_names)
    write_csv(output / "confusion_matrix.csv", rows, matrix_columns)


def log_tensorboard(output: Path, split: str, metrics: dict[str, float], table: str) -> None:
    """Scalars (`<split>/<metric>_<class>`, image-level means) and the summary table as text."""
    with SummaryWriter(log_dir=str(output)) as writer:
        for name, value in metrics.items():
            writer.add_scalar(name, value, 0)
        writer.add_text(f"{split}/summary", table, 0)


def score_split(
    images: Iterable[ImagePrediction],
    task: Task,
    threshold: float,
    inference: InferenceSettings,
    output: Path,
) -> SplitScores:
    """Scores of every image of a split; each image's mask and overlay are written as it passes."""
    scores = SplitScores(task.num_classes)
    for image in images:
        scored = score_image(image, task, threshold, inference.postprocess)
        write_image_files(output, scored, inference.overlay)
        scores.add(scored)
    return scores


def tuned_threshold(
    model: torch.nn.Module,
    task: Task,
    inference: InferenceSettings,
    evaluation: EvaluationSettings,
    device: torch.device,
) -> tuple[float, dict[str, np.ndarray]]:
    """Tune on val and write `<ckpt_path>.threshold.json`; keeps val's masks when val is scored."""
    keep = evaluation.split == "val"
    threshold, val_iou, tile_masks = tune_threshold(
        model, evaluation.data_dir, task, inference, device, evaluation.threshold_grid, keep
    )
    sidecar = threshold_path(Path(str(inference.ckpt_path)))
    write_json(sidecar, {"threshold": threshold, "val_iou": val_iou})
    log.info("tuned threshold %.3f (val IoU %.4f) written to %s", threshold, val_iou, sidecar)
    return threshold, tile_masks


def evaluate_checkpoint(
    inference: InferenceSettings, evaluation: EvaluationSettings
) -> dict[str, float]:
    """Score `inference.ckpt_path` on `evaluation.split`; returns its metrics and threshold."""
    set_threads(inference.threads)
    loaded, task, threshold, device = load_settings_model(inference)
    data_dir, split, output = evaluation.data_dir, evaluation.split, evaluation.output
    images: Iterable[ImagePrediction]
    tile_masks: dict[str, np.ndarray] = {}
    if evaluation.tune_threshold:
        threshold, tile_masks = tuned_threshold(loaded.model, task, inference, evaluation, device)
    if tile_masks:
        # Tuning on the split being scored: val's masks from the sweep, not a second prediction
        # (~20-30 s per lab image on CPU); 0/1 probabilities give them back at any cut in [0, 1).
        images, cut = replay_split(data_dir, "val", task, tile_masks), 0.5
    else:
        images = predict_split(loaded.model, data_dir, split, task, inference, device)
        cut = threshold
    total = image_count(data_dir, split)
    images = progress_bar(images, f"{split} images", "image", total, enabled=inference.progress)
    scores = score_split(images, task, cut, inference, output)
    summary = summary_rows(scores, task.class_names)
    write_score_tables(output, scores, summary, task)
    metrics = split_metrics(split, summary, scores.matrix, task.class_names)
    table = format_table(summary)
    log_tensorboard(output, split, metrics, table)
    write_evaluation_report(inference, evaluation, task, metrics | {"threshold": threshold})
    print(f"{split}: {len(scores.image_rows)} images, {len(scores.tile_rows)} tiles, ", end="")
    print(f"threshold {threshold:.3f}\n{table}")
    pooled = ", ".join(f"{name} {metrics[f'{split}/iou_{name}']:.4f}" for name in task.foreground)
    print(f"{split} IoU pooled over all pixels: {pooled}")
    return metrics | {"threshold": threshold}
