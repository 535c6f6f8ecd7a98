"""NeuroSegDataModule: the prepared tree's splits as Lightning dataloaders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler

from neuroseg.data.dataset import (
    ManifestRow,
    TileDataset,
    collate_padded,
    read_manifest,
    split_tiles,
)
from neuroseg.data.sample import ensure_sample
from neuroseg.data.settings import AugmentSettings
from neuroseg.data.transforms import eval_transform, train_transform
from neuroseg.errors import UsageError
from neuroseg.models.ternausnet import SIZE_MULTIPLE
from neuroseg.task import get_task

SPLITS = ("train", "val", "test")


class NeuroSegDataModule(pl.LightningDataModule):
    """Train on random crops; validate and test on whole tiles padded to a multiple of 32.

    Arguments are the keys of conf/data/default.yaml (schema: data.settings.DataSettings) plus
    `task` ("binary" or "axons") and `sample` (experiment=demo's ensure_sample keywords: the
    sample dataset is made in prepare_data, by one process per node, if it is missing).
    `augment` holds `train_transform`'s keyword arguments (flip, brightness/contrast, noise).
    Split membership comes from `<dir>/manifest.csv`. Worker seeding is Lightning's: with
    `seed_everything(seed, workers=True)` the Trainer adds its worker_init_fn, and augmentation
    draws from torch's per-worker generator mixed with the process's rank (see `TileDataset`).
    Under DDP, val/test/predict give each process every n-th tile, none twice (Lightning's own
    sampler would pad the last round with repeats, and score those tiles twice).
    """

    def __init__(
        self,
        dir: str | Path,
        task: str,
        batch_size: int,
        eval_batch_size: int,
        crop_hw: Sequence[int],
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        cache: bool = False,
        augment: Mapping[str, float | Sequence[float]] | None = None,
        sample: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = Path(dir)
        self.task = get_task(str(task))
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.crop_hw = tuple(int(side) for side in crop_hw)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        # DataLoader refuses persistent workers without workers; num_workers=0 just means "off".
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.cache = bool(cache)
        self.augment = _plain(augment or {})
        self.sample = dict(sample) if sample else None
        _check_settings(self)
        self._manifest: list[ManifestRow] | None = None
        self.datasets: dict[str, TileDataset] = {}

    def prepare_data(self) -> None:
        """Make the sample dataset if one is configured and missing (one process per node).

        ensure_sample locks its folder and waits, so nodes sharing a file system, or runs started
        together, make it once and reuse it.
        """
        if self.sample is not None:
            ensure_sample(**self.sample)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets `stage` needs (all when None); with `cache` tiles decode here."""
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
        }.get(stage or "", SPLITS)
        for split in dict.fromkeys(wanted):
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    def _dataset(self, split: str) -> TileDataset:
        if self._manifest is None:  # read once, for every split
            self._manifest = read_manifest(self.data_dir)
        tiles = split_tiles(self._manifest, split, self.data_dir / "manifest.csv")
        transform = (
            train_transform(self.crop_hw, **self.augment)
            if split == "train"
            else eval_transform(SIZE_MULTIPLE)
        )
        rank = self.trainer.global_rank if self.trainer is not None else 0
        return TileDataset(
            self.data_dir / split, tiles, self.task, transform, cache=self.cache, rank=rank
        )

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        if split not in self.datasets:  # also usable without a Trainer calling setup()
            self.datasets[split] = self._dataset(split)
        sampler = None if split == "train" else self._unrepeated_sampler(split)
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=collate_padded,
        )

    def _unrepeated_sampler(self, split: str) -> Sampler[int] | None:
        """This process's share of an evaluation split under DDP (None on one process).

        Lightning leaves a loader that already has a DistributedSampler alone. Shares differ by at
        most one tile; that is safe in evaluation because no step waits for the others (scores
        and losses are summed across processes once, at the epoch's end).
        """
        world_size = self.trainer.world_size if self.trainer is not None else 1
        if world_size < 2:
            return None
        count = len(self.datasets[split])
        if count < world_size:
            # A process without a tile would never join the epoch-end sum, and the others wait.
            raise UsageError(
                f"{self.data_dir / 'manifest.csv'}: split {split!r} has {count} tiles for "
                f"{world_size} processes; use at most {count} devices x nodes or prepare more tiles"
            )
        return UnrepeatedDistributedSampler(
            self.datasets[split],
            num_replicas=world_size,
            rank=self.trainer.global_rank,
            shuffle=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)


def _plain(augment: Mapping[str, float | Sequence[float]]) -> dict[str, float | tuple[float, ...]]:
    """Plain floats and tuples (config lists arrive as ListConfig, which the transforms reject)."""
    return {
        str(key): tuple(float(v) for v in value) if isinstance(value, Sequence) else float(value)
        for key, value in augment.items()
    }


def _check_settings(module: NeuroSegDataModule) -> None:
    """Raise one ValueError listing every bad setting, named by its conf/data key."""
    problems = []
    if len(module.crop_hw) != 2 or any(side % SIZE_MULTIPLE for side in module.crop_hw):
        problems.append(f"crop_hw={list(module.crop_hw)} must be two multiples of {SIZE_MULTIPLE}")
    for key in ("batch_size", "eval_batch_size"):
        if getattr(module, key) < 1:
            problems.append(f"{key}={getattr(module, key)} must be at least 1")
    if module.num_workers < 0:
        problems.append(f"num_workers={module.num_workers} must be 0 or more")
    known = [f.name for f in fields(AugmentSettings)]  # what conf/data's schema allows
    unknown = sorted(set(module.augment) - set(known))
    if unknown:
        problems.append(f"augment keys {unknown} unknown; choose from {known}")
    if problems:
        raise UsageError(f"conf/data settings: {'; '.join(problems)}")
