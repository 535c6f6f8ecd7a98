"""Predict a prepared split tile by tile and re-assemble each source image from its tiles."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroseg.data.dataset import ManifestRow, load_tile, read_manifest, split_tiles, tile_paths
from neuroseg.inference.predictor import image_probs
from neuroseg.inference.settings import InferenceSettings
from neuroseg.io import scale_to_unit
from neuroseg.task import Task


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


def assemble_split(
    data_dir: Path,
    split: str,
    task: Task,
    tile_probs: Callable[[str, np.ndarray], np.ndarray],
) -> Iterator[ImagePrediction]:
    """Read `split` tile by tile and re-assemble each source image, in manifest order.

    `tile_probs(tile, gray)` gives each tile's (C, h, w) array: the network's probabilities in
    `predict_split`, masks kept from an earlier pass when evaluate replays a split without it.
    """
    rows = read_manifest(data_dir)
    split_tiles(rows, split, data_dir / "manifest.csv")  # raises on an empty split
    for image_id, image_rows in group_by_image(rows, split).items():
        names = [str(row["tile"]) for row in image_rows]
        image_paths, mask_paths = tile_paths(data_dir / split, names, task)
        tiles, grays = [], []
        for name, image_path, mask_path in zip(names, image_paths, mask_paths, strict=True):
            gray, truth = load_tile(image_path, mask_path, task.num_classes)
            tiles.append(TilePrediction(name, tile_probs(name, gray), truth))
            grays.append(gray)
        first = image_rows[0]
        shape = (int(first["source_height"]), int(first["source_width"]))  # type: ignore[arg-type]
        origins = [(int(row["y0"]), int(row["x0"])) for row in image_rows]  # type: ignore[arg-type]
        gray, covered = assemble_tiles(origins, grays, *shape)
        probs, _ = assemble_tiles(origins, [tile.probs for tile in tiles], *shape)
        truth, _ = assemble_tiles(origins, [tile.truth for tile in tiles], *shape)
        yield ImagePrediction(image_id, str(first["condition"]), gray, probs, truth, covered, tiles)


def image_count(data_dir: Path, split: str) -> int:
    """How many source images `split` holds: the length of `assemble_split`, for a progress bar."""
    return len(group_by_image(read_manifest(data_dir), split))


def predict_split(
    model: torch.nn.Module,
    data_dir: Path,
    split: str,
    task: Task,
    settings: InferenceSettings,
    device: torch.device,
) -> Iterator[ImagePrediction]:
    """Predict every tile of `split` (whole tile, padded to 32 and cropped back) image by image."""

    def tile_probs(_tile: str, gray: np.ndarray) -> np.ndarray:
        return image_probs(model, scale_to_unit(gray), settings, device)

    return assemble_split(data_dir, split, task, tile_probs)
