"""Train crops per second from NeuroSegDataModule at the lab's size, by worker count and cache.

    .venv/bin/python benchmarks/loader.py [--images 8] [--epochs 3] [--data-dir DIR]

Writes a prepared tree of synthetic 1536x2048 images cut into 2x2 tiles of 768x1024 (the layout
`neuroseg.prepare` writes), times each stage of a training sample on one core (decode, scaling,
each augmentation, normalisation), then full train epochs with conf/data/default.yaml's settings.
Prints a table and writes benchmarks/results/loader.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from neuroseg import io
from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.data.dataset import load_tile, make_sample, tile_paths
from neuroseg.data.manifest import write_prepared_tree
from neuroseg.data.sample_image import make_image
from neuroseg.data.settings import read_group_file
from neuroseg.data.transforms import normalize, train_transform
from neuroseg.task import get_task

ROOT = Path(__file__).resolve().parents[1]


def write_tree(out_dir: Path, images: int, seed: int = 0) -> Path:
    """Prepared tree: all but two images train, one val, one test; 2x2 tiles each, with axons."""
    rng = np.random.default_rng(seed)
    splits = ["train"] * (images - 2) + ["val", "test"]
    items = []
    for number, split in enumerate(splits, start=1):
        synth = make_image(rng, condition="200_2")
        items.append(
            dict(split=split, condition="200_2", image_id=f"200_2_{number}")
            | dict(image=synth.image, classes=synth.classes)
        )
    return write_prepared_tree(out_dir, items)


def time_loader(
    data_dir: Path, num_workers: int, cache: bool, epochs: int
) -> dict[str, float | int | bool]:
    """Setup seconds, first-epoch and steady-state train crops/s (epochs after the first)."""
    cfg = read_group_file(ROOT / "conf" / "data" / "default.yaml")
    cfg.dir = str(data_dir)
    torch.manual_seed(0)
    start = time.perf_counter()
    dm = NeuroSegDataModule(**{**cfg, "num_workers": num_workers, "cache": cache}, task="axons")
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    loader = dm.train_dataloader()
    rates = []
    for _ in range(1 + epochs):
        start = time.perf_counter()
        crops = sum(len(batch["tile"]) for batch in loader)
        rates.append(crops / (time.perf_counter() - start))
    return {
        "num_workers": num_workers,
        "cache": cache,
        "setup_s": round(setup_s, 3),
        "first_epoch_crops_per_s": round(rates[0], 2),
        "crops_per_s": round(float(np.mean(rates[1:])), 2),
        "train_tiles": len(dm.datasets["train"]),
        # Other work on the machine skews the rates; the load average says how busy it was.
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def per_call_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of `fn` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 3)


def stage_costs(data_dir: Path, repeats: int = 30) -> dict[str, float]:
    """One core's milliseconds per training crop for each stage of TileDataset.__getitem__.

    Decode (TIFF + PNG mask), scaling to [0, 1], the augmentation pipeline (each transform at
    p=1 and the shipped mix), ImageNet normalisation to 3 channels, and the whole sample from a
    cached tile; torch runs on one thread, as in a DataLoader worker.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = read_group_file(ROOT / "conf" / "data" / "default.yaml")
    crop_hw, augment = tuple(cfg.crop_hw), OmegaConf.to_container(cfg.augment)
    task = get_task("axons")
    tile = next(iter(sorted((data_dir / "train" / "images").glob("*.tif")))).stem
    image_paths, mask_paths = tile_paths(data_dir / "train", [tile], task)
    image, mask = load_tile(image_paths[0], mask_paths[0], task.num_classes)
    unit = io.scale_to_unit(image)
    off = dict.fromkeys(("hflip_p", "vflip_p", "brightness_contrast_p", "noise_p"), 0.0)
    shipped, bare = train_transform(crop_hw, **augment), train_transform(crop_hw, **augment | off)
    costs = {
        "decode_ms": per_call_ms(
            lambda: load_tile(image_paths[0], mask_paths[0], task.num_classes), repeats
        ),
        "scale_to_unit_ms": per_call_ms(lambda: io.scale_to_unit(image), repeats),
        "crop_only_ms": per_call_ms(lambda: bare(image=unit, masks=[mask]), repeats),
    }
    for name in off:
        transform = train_transform(crop_hw, **(augment | off | {name: 1.0}))
        costs[f"crop_and_{name.removesuffix('_p')}_ms"] = per_call_ms(
            lambda transform=transform: transform(image=unit, masks=[mask]), repeats
        )
    costs["shipped_augment_ms"] = per_call_ms(lambda: shipped(image=unit, masks=[mask]), repeats)
    crop = unit[: crop_hw[0], : crop_hw[1]].copy()
    costs["normalize_ms"] = per_call_ms(lambda: normalize(crop), repeats)
    costs["cached_sample_ms"] = per_call_ms(
        lambda: make_sample(io.scale_to_unit(image), mask, shipped, task.out_channels), repeats
    )
    torch.set_num_threads(threads)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="source images (2 go to val/test)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs after a warm-up one")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir", type=Path, help="reuse or create the tree here")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "loader.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp) / "prepared"
        if not (data_dir / "manifest.csv").is_file():
            start = time.perf_counter()
            write_tree(data_dir, args.images)
            print(f"wrote {data_dir} in {time.perf_counter() - start:.1f} s")
        stages = stage_costs(data_dir)
        results = [
            time_loader(data_dir, workers, cache, args.epochs)
            for workers in args.workers
            for cache in (False, True)
        ]
    print("one core, ms per 512x768 training crop of a 768x1024 tile:")
    for name, value in stages.items():
        print(f"  {name.removesuffix('_ms'):>28} {value:7.2f}")
    header = ("workers", "cache", "setup s", "1st epoch", "crops/s", "load")
    print("{:>7} {:>5} {:>8} {:>10} {:>8} {:>5}".format(*header))
    for row in results:
        print(
            f"{row['num_workers']:>7} {row['cache']!s:>5} {row['setup_s']:>8.2f} "
            f"{row['first_epoch_crops_per_s']:>10.1f} {row['crops_per_s']:>8.1f} "
            f"{row['load_avg_1min']:>5.1f}"
        )
    machine = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
    }
    payload = {"machine": machine, "tile_hw": [768, 1024], "stages": stages, "results": results}
    io.write_json(args.out, payload)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
