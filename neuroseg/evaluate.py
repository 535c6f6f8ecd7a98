"""Score a checkpoint on a prepared split, per tile and per source image re-assembled from tiles.

    python -m neuroseg.evaluate ckpt_path=model.ckpt [split=test] [tune_threshold=true]

Writes per_image.csv, per_tile.csv, summary.csv, confusion_matrix.csv, masks/<image_id>.png,
overlays/<image_id>.png and TensorBoard scalars + a text table into the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from neuroseg.assembly import predict_split
from neuroseg.io import write_csv, write_json, write_png
from neuroseg.models.checkpoint import threshold_path
from neuroseg.overlay import overlay
from neuroseg.predictor import class_map, load_model
from neuroseg.scoring import (
    STATS,
    best_threshold,
    confusion_matrix,
    matrix_rows,
    score_columns,
    score_row,
    summarize,
    threshold_counts,
)
from neuroseg.task import Task

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("level", "condition", "class", "metric", *STATS)


def tune_threshold(
    model: torch.nn.Module, data_dir: Path, task: Task, cfg: DictConfig, device: torch.device
) -> tuple[float, float]:
    """(threshold, mean per-image val IoU) maximising val IoU over `cfg.threshold_grid`."""
    if task.out_channels != 1:
        raise ValueError(f"tune_threshold=true needs a binary model; task {task.name} uses argmax")
    thresholds = np.linspace(**OmegaConf.to_container(cfg.threshold_grid))
    counts = [
        threshold_counts(image.probs[0], image.truth, thresholds, image.covered)
        for image in predict_split(model, data_dir, "val", task, cfg, device)
    ]
    return best_threshold(counts, thresholds)


def score_split(
    model: torch.nn.Module,
    data_dir: Path,
    task: Task,
    threshold: float,
    cfg: DictConfig,
    device: torch.device,
    output: Path,
) -> tuple[list[dict], list[dict], np.ndarray]:
    """(per-image rows, per-tile rows, summed image confusion matrix); writes masks and overlays."""
    image_rows, tile_rows = [], []
    style = OmegaConf.to_container(cfg.overlay)
    total = np.zeros((task.num_classes, task.num_classes), dtype=np.int64)
    for image in predict_split(model, data_dir, cfg.split, task, cfg, device):
        for tile in image.tiles:
            mask = class_map(tile.probs, task, threshold, cfg)
            matrix = confusion_matrix(tile.truth, mask, task.num_classes)
            tile_rows.append(
                {"tile": tile.tile, "image_id": image.image_id, "condition": image.condition}
                | score_row(matrix, task.class_names)
            )
        mask = class_map(image.probs, task, threshold, cfg)
        matrix = confusion_matrix(image.truth, mask, task.num_classes, image.covered)
        total += matrix
        image_rows.append(
            {"image_id": image.image_id, "condition": image.condition}
            | score_row(matrix, task.class_names)
        )
        write_png(output / "masks" / f"{image.image_id}.png", mask)
        write_png(
            output / "overlays" / f"{image.image_id}.png",
            overlay(image.gray, mask, truth=image.truth, **style),
        )
    return image_rows, tile_rows, total


def format_table(summary: Sequence[dict], level: str = "image") -> str:
    """Markdown table of the summary rows of one level (printed and logged to TensorBoard)."""
    lines = ["| condition | class | metric | n | mean | std | min | max |", "|---" * 8 + "|"]
    for row in summary:
        if row["level"] == level:
            stats = " | ".join(f"{row[s]:.4f}" for s in STATS[1:])
            lines.append(
                f"| {row['condition']} | {row['class']} | {row['metric']} | {row['n']} | {stats} |"
            )
    return "\n".join(lines)


def log_tensorboard(output: Path, split: str, metrics: dict[str, float], table: str) -> None:
    """Scalars (`<split>/<metric>_<class>`, image-level means) and the summary table as text."""
    with SummaryWriter(log_dir=str(output)) as writer:
        for name, value in metrics.items():
            writer.add_scalar(name, value, 0)
        writer.add_text(f"{split}/summary", table, 0)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score `cfg.ckpt_path` on `cfg.split` of `cfg.data_dir`; returns image-level mean scores."""
    loaded, task, threshold, device = load_model(cfg)
    data_dir, output = Path(cfg.data_dir), Path(cfg.output)
    if cfg.tune_threshold:
        threshold, val_iou = tune_threshold(loaded.model, data_dir, task, cfg, device)
        sidecar = threshold_path(Path(cfg.ckpt_path))
        write_json(sidecar, {"threshold": threshold, "val_iou": val_iou})
        log.info("tuned threshold %.3f (val IoU %.4f) written to %s", threshold, val_iou, sidecar)
    image_rows, tile_rows, matrix = score_split(
        loaded.model, data_dir, task, threshold, cfg, device, output
    )
    columns = score_columns(task.class_names)
    write_csv(output / "per_image.csv", image_rows, ("image_id", "condition", *columns))
    write_csv(output / "per_tile.csv", tile_rows, ("tile", "image_id", "condition", *columns))
    summary = summarize(image_rows, task.class_names, "image")
    summary += summarize(tile_rows, task.class_names, "tile")
    write_csv(output / "summary.csv", summary, SUMMARY_COLUMNS)
    matrix_columns = ("truth", *(f"pred_{name}" for name in task.class_names))
    write_csv(
        output / "confusion_matrix.csv", matrix_rows(matrix, task.class_names), matrix_columns
    )
    metrics = {
        f"{cfg.split}/{row['metric']}_{row['class']}": row["mean"]
        for row in summary
        if row["level"] == "image" and row["condition"] == "all"
    }
    metrics[f"{cfg.split}/iou"] = float(
        np.nanmean([metrics[f"{cfg.split}/iou_{name}"] for name in task.foreground])
    )
    table = format_table(summary)
    log_tensorboard(output, cfg.split, metrics, table)
    print(
        f"{cfg.split}: {len(image_rows)} images, {len(tile_rows)} tiles, threshold {threshold:.3f}"
    )
    print(table)
    return metrics | {"threshold": threshold}


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    """Entry point; returns mean image IoU so a sweep can optimise it."""
    return evaluate(cfg)[f"{cfg.split}/iou"]


if __name__ == "__main__":
    main()
