"""Score a checkpoint on a prepared split, per tile and per source image re-assembled from tiles.

    python -m neuroseg.evaluate ckpt_path=model.ckpt [split=test] [tune_threshold=true]

Writes per_image.csv, per_tile.csv, summary.csv, confusion_matrix.csv, masks/<image_id>.png,
overlays/<image_id>.png and TensorBoard scalars + a text table into the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from neuroseg.cli import command
from neuroseg.errors import UsageError
from neuroseg.evaluation.assembly import ImagePrediction, assemble_split, image_count, predict_split
from neuroseg.evaluation.scoring import (
    STATS,
    best_threshold,
    confusion_matrix,
    matrix_rows,
    score_columns,
    score_row,
    summarize,
    threshold_counts,
)
from neuroseg.inference.overlay import overlay
from neuroseg.inference.predictor import class_map, load_model
from neuroseg.inference.window import probs_to_mask
from neuroseg.io import write_csv, write_json, write_png
from neuroseg.models.checkpoint import threshold_path
from neuroseg.runtime import progress_bar
from neuroseg.task import Task

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("level", "condition", "class", "metric", *STATS)


def threshold_ranks(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(h, w) how many `thresholds` each pixel of binary (1, h, w) `probs` exceeds (uint8, T < 256).

    One byte per pixel stands in for every grid threshold's mask: `probs_to_mask(probs, t)` is
    exactly `ranks >= np.count_nonzero(thresholds <= t)`, since exceeding t means exceeding every
    grid value at or below it. The masks come from `probs_to_mask` itself, so they are the ones
    `class_map` would draw, float32 rounding of the threshold included.
    """
    ranks = np.zeros(probs.shape[-2:], dtype=np.min_scalar_type(thresholds.size))
    for threshold in thresholds:
        ranks += probs_to_mask(probs, float(threshold))
    return ranks


def tune_threshold(
    model: torch.nn.Module,
    data_dir: Path,
    task: Task,
    cfg: DictConfig,
    device: torch.device,
    keep_masks: bool = False,
) -> tuple[float, float, dict[str, np.ndarray]]:
    """(threshold, mean per-image val IoU, val tile masks) maximising val IoU over the grid.

    With `keep_masks` (scoring val next) the (h, w) bool mask `probs > threshold` of every val
    tile comes back, keyed by tile name, so val is predicted once. Memory: one byte per val
    pixel (uint8 `threshold_ranks` while sweeping, then the bool masks), not float32
    probabilities; a (T, 3) int64 count array per image; and one image's float32 tiles at a time.
    """
    if task.out_channels != 1:
        raise UsageError(f"tune_threshold=true needs a binary model; task {task.name} uses argmax")
    thresholds = np.linspace(**OmegaConf.to_container(cfg.threshold_grid))
    if thresholds.size == 0 or thresholds.min() < 0.0 or thresholds.max() > 1.0:
        raise UsageError(
            f"threshold_grid={OmegaConf.to_container(cfg.threshold_grid)}: choose thresholds "
            "in [0, 1], e.g. threshold_grid.start=0.05 threshold_grid.stop=0.95"
        )
    counts, ranks = [], {}
    images = predict_split(model, data_dir, "val", task, cfg, device)
    total = image_count(data_dir, "val")
    for image in progress_bar(images, "tuning on val", "image", total, enabled=cfg.progress):
        counts.append(threshold_counts(image.probs[0], image.truth, thresholds, image.covered))
        if keep_masks:
            ranks |= {tile.tile: threshold_ranks(tile.probs, thresholds) for tile in image.tiles}
    threshold, val_iou = best_threshold(counts, thresholds)
    level = np.count_nonzero(thresholds <= threshold)
    for name, tile_ranks in ranks.items():
        ranks[name] = tile_ranks >= level
    return threshold, val_iou, ranks


def replay_split(
    data_dir: Path, split: str, task: Task, tile_masks: dict[str, np.ndarray]
) -> Iterator[ImagePrediction]:
    """`split` re-assembled with kept (h, w) bool tile masks as (1, h, w) 0/1 probabilities.

    Cut at any threshold in [0, 1) they give back the masks; the model is not run. Each mask is
    dropped once used. The gray images and truth are read from disk again (cheap).
    """

    def tile_probs(tile: str, _gray: np.ndarray) -> np.ndarray:
        return tile_masks.pop(tile)[None].astype(np.float32)

    return assemble_split(data_dir, split, task, tile_probs)


def score_split(
    images: Iterable[ImagePrediction],
    task: Task,
    threshold: float,
    cfg: DictConfig,
    output: Path,
) -> tuple[list[dict], list[dict], np.ndarray]:
    """(per-image rows, per-tile rows, summed image confusion matrix); writes masks and overlays."""
    image_rows, tile_rows = [], []
    style = OmegaConf.to_container(cfg.overlay)
    total = np.zeros((task.num_classes, task.num_classes), dtype=np.int64)
    for image in images:
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
    # Tuning on the split being scored: keep val's masks from the sweep instead of predicting
    # val a second time (prediction is what costs, ~20-30 s per lab image on CPU).
    replay = bool(cfg.tune_threshold) and cfg.split == "val"
    if cfg.tune_threshold:
        threshold, val_iou, tile_masks = tune_threshold(
            loaded.model, data_dir, task, cfg, device, keep_masks=replay
        )
        sidecar = threshold_path(Path(cfg.ckpt_path))
        write_json(sidecar, {"threshold": threshold, "val_iou": val_iou})
        log.info("tuned threshold %.3f (val IoU %.4f) written to %s", threshold, val_iou, sidecar)
    if replay:
        # 0/1 probabilities: any cut in [0, 1) gives back the masks at the tuned threshold.
        images, cut = replay_split(data_dir, "val", task, tile_masks), 0.5
    else:
        images = predict_split(loaded.model, data_dir, cfg.split, task, cfg, device)
        cut = threshold
    total = image_count(data_dir, cfg.split)
    images = progress_bar(images, f"{cfg.split} images", "image", total, enabled=cfg.progress)
    image_rows, tile_rows, matrix = score_split(images, task, cut, cfg, output)
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
    metrics = split_metrics(cfg.split, summary, matrix, task.class_names)
    table = format_table(summary)
    log_tensorboard(output, cfg.split, metrics, table)
    print(
        f"{cfg.split}: {len(image_rows)} images, {len(tile_rows)} tiles, threshold {threshold:.3f}"
    )
    print(table)
    pooled = ", ".join(
        f"{name} {metrics[f'{cfg.split}/iou_{name}']:.4f}" for name in task.foreground
    )
    print(f"{cfg.split} IoU pooled over all pixels: {pooled}")
    return metrics | {"threshold": threshold}


@command("evaluate")
def main(cfg: DictConfig) -> float:
    """Entry point; returns the mean over images of per-image IoU so a sweep can optimise it."""
    return evaluate(cfg)[f"{cfg.split}/image_iou"]


if __name__ == "__main__":
    main()
