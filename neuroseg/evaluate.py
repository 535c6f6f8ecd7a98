"""Score a checkpoint on a prepared split, per tile and per source image re-assembled from tiles.

    python -m neuroseg.evaluate ckpt_path=model.ckpt [split=test] [tune_threshold=true]

Writes per_image.csv, per_tile.csv, summary.csv, confusion_matrix.csv, masks/<image_id>.png,
overlays/<image_id>.png and TensorBoard scalars + a text table into the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from neuroseg.data.dataset import ManifestRow, load_tile, read_manifest, split_tiles, tile_paths
from neuroseg.inference import predict_probs
from neuroseg.io import scale_to_unit, write_csv, write_json, write_png
from neuroseg.models.checkpoint import threshold_path
from neuroseg.overlay import overlay
from neuroseg.predict import class_map, inference_settings, load_model
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


@dataclass(frozen=True)
class TilePrediction:
    """One tile: name, probabilities (C, h, w) float32, truth (h, w) uint8."""

    tile: str
    probs: np.ndarray
    truth: np.ndarray


@dataclass(frozen=True)
class ImagePrediction:
    """One source image re-assembled from its tiles; `covered` (H, W) bool marks tiled pixels."""

    image_id: str
    condition: str
    gray: np.ndarray
    probs: np.ndarray
    truth: np.ndarray
    covered: np.ndarray
    tiles: list[TilePrediction]


def assemble_tiles(
    origins: Sequence[tuple[int, int]], arrays: Sequence[np.ndarray], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paste arrays (..., h, w) at their (y0, x0) into one (..., height, width) array, same dtype.

    Returns it with an (height, width) bool map of covered pixels; prepared tiles never overlap.
    """
    out = np.zeros((*arrays[0].shape[:-2], height, width), dtype=arrays[0].dtype)
    covered = np.zeros((height, width), dtype=bool)
    for (y0, x0), array in zip(origins, arrays, strict=True):
        h, w = array.shape[-2:]
        if y0 + h > height or x0 + w > width:
            raise ValueError(f"tile at ({y0}, {x0}) of {h}x{w} reaches outside {height}x{width}")
        out[..., y0 : y0 + h, x0 : x0 + w] = array
        covered[y0 : y0 + h, x0 : x0 + w] = True
    return out, covered


def group_by_image(rows: Sequence[ManifestRow], split: str) -> dict[str, list[ManifestRow]]:
    """Manifest rows of one split grouped by image_id, in manifest order."""
    groups: dict[str, list[ManifestRow]] = {}
    for row in rows:
        if row["split"] == split:
            groups.setdefault(str(row["image_id"]), []).append(row)
    return groups


def predict_split(
    model: torch.nn.Module,
    data_dir: Path,
    split: str,
    task: Task,
    cfg: DictConfig,
    device: torch.device,
) -> Iterator[ImagePrediction]:
    """Predict every tile of `split` (whole tile, padded to 32 and cropped back) image by image."""
    rows = read_manifest(data_dir)
    split_tiles(rows, split, data_dir / "manifest.csv")  # raises on an empty split
    for image_id, image_rows in group_by_image(rows, split).items():
        names = [str(row["tile"]) for row in image_rows]
        image_paths, mask_paths = tile_paths(data_dir / split, names, task)
        tiles, grays = [], []
        for row, image_path, mask_path in zip(image_rows, image_paths, mask_paths, strict=True):
            gray, truth = load_tile(image_path, mask_path, task.num_classes)
            probs = predict_probs(
                model, scale_to_unit(gray), device=device, **inference_settings(cfg)
            )
            tiles.append(TilePrediction(str(row["tile"]), probs, truth))
            grays.append(gray)
        first = image_rows[0]
        shape = (int(first["source_height"]), int(first["source_width"]))  # type: ignore[arg-type]
        origins = [(int(row["y0"]), int(row["x0"])) for row in image_rows]  # type: ignore[arg-type]
        gray, covered = assemble_tiles(origins, grays, *shape)
        probs, _ = assemble_tiles(origins, [tile.probs for tile in tiles], *shape)
        truth, _ = assemble_tiles(origins, [tile.truth for tile in tiles], *shape)
        yield ImagePrediction(image_id, str(first["condition"]), gray, probs, truth, covered, tiles)


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
