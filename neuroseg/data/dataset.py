"""One split of the prepared tree as a torch Dataset: tile, task mask, validity mask, tile name."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from neuroseg.data.manifest import MANIFEST_INT_COLUMNS
from neuroseg.data.transforms import normalize, pad_image, pad_mask
from neuroseg.errors import InputError, MissingPathError
from neuroseg.io import read_csv, read_image, read_tiff, scale_to_unit
from neuroseg.task import Task

PREPARE_HINT = "run `python -m neuroseg.prepare` to build the prepared dataset"

Sample = dict[str, torch.Tensor | str]
ManifestRow = dict[str, str | int | None]


def read_manifest(prepared_dir: Path) -> list[ManifestRow]:
    """Rows of `manifest.csv`; integer columns parsed (empty cells become None)."""
    prepared_dir = Path(prepared_dir)
    if not prepared_dir.is_dir():
        raise MissingPathError(f"{prepared_dir}: no prepared dataset there; {PREPARE_HINT}")
    path = prepared_dir / "manifest.csv"
    if not path.is_file():
        raise MissingPathError(f"{path}: manifest missing; {PREPARE_HINT}")
    rows: list[ManifestRow] = []
    for number, raw in enumerate(read_csv(path), start=2):  # line 1 is the header
        missing = [column for column in ("tile", "split") if not raw.get(column)]
        if missing:
            raise InputError(f"{path}: line {number} lacks {missing}; {PREPARE_HINT}")
        row: ManifestRow = dict(raw)
        for column in MANIFEST_INT_COLUMNS:
            if column in raw:
                try:
                    row[column] = int(raw[column]) if raw[column] != "" else None
                except ValueError as error:
                    raise InputError(
                        f"{path}: line {number} {column}={raw[column]!r} is not an integer; "
                        f"{PREPARE_HINT}"
                    ) from error
        rows.append(row)
    return rows


def split_tiles(rows: Sequence[ManifestRow], split: str, manifest: Path) -> list[str]:
    """Tile names of one split, in manifest order; an empty split is an error naming the file."""
    tiles = [str(row["tile"]) for row in rows if row["split"] == split]
    if not tiles:
        raise InputError(f"{manifest}: no tiles in split {split!r}; {PREPARE_HINT}")
    return tiles


def tile_paths(split_dir: Path, tiles: Sequence[str], task: Task) -> tuple[list[Path], list[Path]]:
    """(image paths, mask paths) of `tiles`; every missing folder or file is reported at once."""
    mask_dir = split_dir / task.mask_dir
    if task.name == "axons" and not mask_dir.is_dir():
        raise MissingPathError(
            f"{mask_dir}: no 3-class masks for the axons task; re-run `python -m neuroseg.prepare` "
            "on a raw tree that has labels_axons/"
        )
    images = [split_dir / "images" / f"{tile}.tif" for tile in tiles]
    masks = [mask_dir / f"{tile}.png" for tile in tiles]
    missing = [str(path.relative_to(split_dir)) for path in images + masks if not path.is_file()]
    if missing:
        raise MissingPathError(
            f"{split_dir}: {len(missing)} files listed in manifest.csv are missing "
            f"({', '.join(missing)}); {PREPARE_HINT}"
        )
    return images, masks


def load_tile(image_path: Path, mask_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(gray (H, W) uint8/uint16 as stored, mask (H, W) uint8 in [0, num_classes)); checked."""
    image = read_tiff(image_path)
    if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"{image_path}: tile of shape {image.shape} {image.dtype}; expected 8/16-bit gray; "
            f"{PREPARE_HINT}"
        )
    mask = read_image(mask_path)
    if mask.ndim != 2 or mask.dtype != np.uint8 or mask.shape != image.shape:
        raise InputError(
            f"{mask_path}: mask of shape {mask.shape} {mask.dtype}; expected uint8 {image.shape} "
            f"like {image_path.name}; {PREPARE_HINT}"
        )
    if mask.max(initial=0) >= num_classes:
        raise InputError(
            f"{mask_path}: mask value {mask.max()} but this task has {num_classes} classes; "
            f"{PREPARE_HINT}"
        )
    return image, mask


def make_sample(
    unit_gray: np.ndarray, mask: np.ndarray, transform: A.Compose, out_channels: int
) -> dict[str, torch.Tensor]:
    """Augment and normalise one tile into tensors.

    Returns `image` (3, h, w) float32 normalised, `target` (1, h, w) float32 0/1 when
    `out_channels` is 1 else (h, w) int64 class ids, and `valid` (h, w) bool, False on padding.
    """
    valid = np.ones(mask.shape, dtype=np.uint8)
    out = transform(image=unit_gray, masks=[mask, valid])
    target, valid = out["masks"]
    if out_channels == 1:
        target_tensor = torch.from_numpy(np.ascontiguousarray(target[None], dtype=np.float32))
    else:
        target_tensor = torch.from_numpy(np.ascontiguousarray(target, dtype=np.int64))
    return {
        "image": torch.from_numpy(np.ascontiguousarray(normalize(out["image"]))),
        "target": target_tensor,
        "valid": torch.from_numpy(np.ascontiguousarray(valid, dtype=bool)),
    }


class TileDataset(Dataset[Sample]):
    """Tiles of one prepared split with the task's mask; samples as in `make_sample` plus `tile`.

    With `cache=True` every tile is decoded once, up front, in the constructing (main) process:
    forked DataLoader workers then share those arrays copy-on-write, so no epoch decodes again.
    Under a spawn start method (macOS, Windows) each worker receives its own pickled copy.
    `rank` is the process's global rank under DDP: it is mixed into every augmentation seed, so
    ranks that share torch's seed (num_workers=0) still draw different crops and flips.
    """

    def __init__(
        self,
        split_dir: Path,
        tiles: Sequence[str],
        task: Task,
        transform: A.Compose,
        cache: bool = False,
        rank: int = 0,
    ) -> None:
        self.split_dir = Path(split_dir)
        self.tiles = list(tiles)
        self.task = task
        self.transform = transform
        self.rank = int(rank)
        self.image_paths, self.mask_paths = tile_paths(self.split_dir, self.tiles, task)
        self.cached: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cache:
            self.cached = [self._load(index) for index in range(len(self.tiles))]

    def __len__(self) -> int:
        return len(self.tiles)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return load_tile(self.image_paths[index], self.mask_paths[index], self.task.num_classes)

    def __getitem__(self, index: int) -> Sample:
        image, mask = self.cached[index] if self.cached is not None else self._load(index)
        # albumentations keeps its own generator, deaf to global seeds; drawing its seed from
        # torch ties augmentation to seed_everything and to DataLoader's per-worker torch seed.
        # Every DDP rank seeds torch alike, and without workers nothing else tells them apart.
        draw = int(torch.randint(2**31 - 1, ()).item())
        seed = int(np.random.SeedSequence((draw, self.rank)).generate_state(1)[0])
        self.transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
        sample: Sample = dict(
            make_sample(scale_to_unit(image), mask, self.transform, self.task.out_channels)
        )
        sample["tile"] = self.tiles[index]
        return sample


def collate_padded(samples: Sequence[Sample]) -> dict[str, torch.Tensor | list[str]]:
    """Stack samples, padding smaller ones at bottom/right (valid False) to the batch's largest.

    Tiles of one prepared set usually share a size; this keeps mixed sizes from failing.
    """
    height = max(int(sample["image"].shape[-2]) for sample in samples)
    width = max(int(sample["image"].shape[-1]) for sample in samples)
    images, targets, valids = [], [], []
    for sample in samples:
        # Normalisation is per pixel, so reflecting the normalised image equals normalising the
        # reflected one: the same fill as `pad_image` everywhere else.
        images.append(torch.from_numpy(pad_image(sample["image"].numpy(), height, width)))
        targets.append(torch.from_numpy(pad_mask(sample["target"].numpy(), height, width)))
        valids.append(torch.from_numpy(pad_mask(sample["valid"].numpy(), height, width)))
    return {
        "image": torch.stack(images),
        "target": torch.stack(targets),
        "valid": torch.stack(valids),
        "tile": [str(sample["tile"]) for sample in samples],
    }
