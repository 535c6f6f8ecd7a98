"""Threshold tuning on val: the binary cut maximising mean per-image IoU over a grid, and a
replay of val from the kept masks so tuning and scoring val predict it once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroseg.errors import UsageError
from neuroseg.evaluation.assembly import ImagePrediction, assemble_split, image_count, predict_split
from neuroseg.evaluation.scoring import best_threshold, threshold_counts
from neuroseg.inference.settings import InferenceSettings
from neuroseg.inference.window import probs_to_mask
from neuroseg.runtime import progress_bar
from neuroseg.task import Task


@dataclass(frozen=True)
class ThresholdGrid:
    """`threshold_grid` of conf/evaluate.yaml: `num` thresholds from `start` to `stop`."""

    start: float = 0.05
    stop: float = 0.95
    num: int = 19

    def values(self) -> np.ndarray:
        """(num,) float64 thresholds; refused unless all lie in [0, 1]."""
        thresholds = np.linspace(self.start, self.stop, self.num)
        if thresholds.size == 0 or thresholds.min() < 0.0 or thresholds.max() > 1.0:
            raise UsageError(
                f"threshold_grid={vars(self)}: choose thresholds in [0, 1], "
                "e.g. threshold_grid.start=0.05 threshold_grid.stop=0.95"
            )
        return thresholds


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
    settings: InferenceSettings,
    device: torch.device,
    grid: ThresholdGrid,
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
    thresholds = grid.values()
    counts, ranks = [], {}
    images = predict_split(model, data_dir, "val", task, settings, device)
    total = image_count(data_dir, "val")
    for image in progress_bar(images, "tuning on val", "image", total, enabled=settings.progress):
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
