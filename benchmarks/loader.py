"""Train crops per second from NeuroSegDataModule at the lab's size, by worker count and cache.

    .venv/bin/python benchmarks/loader.py [--images 8] [--epochs 3] [--data-dir DIR]

Writes a prepared tree of synthetic 1536x2048 images cut into 2x2 tiles of 768x1024 (the layout
`neuroseg.prepare` writes), then times full train epochs with conf/data/default.yaml's settings.
Prints a table and writes benchmarks/results/loader.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from neuroseg import io
from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.data.synth import make_image

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = (
    "tile split condition source image_id row col y0 x0 height width source_height source_width "
    "px_background px_neurons px_axons"
).split()


def write_tree(out_dir: Path, images: int, seed: int = 0) -> Path:
    """Prepared tree: all but two images train, one val, one test; 2x2 tiles each, with axons."""
    rng = np.random.default_rng(seed)
    splits = ["train"] * (images - 2) + ["val", "test"]
    rows = []
    for number, split in enumerate(splits, start=1):
        synth = make_image(rng, condition="200_2")
        height, width = synth.image.shape[0] // 2, synth.image.shape[1] // 2
        for r in range(2):
            for c in range(2):
                tile = f"200_2_{number}_r{r}c{c}"
                window = np.s_[r * height : (r + 1) * height, c * width : (c + 1) * width]
                classes = synth.classes[window]
                io.write_tiff(out_dir / split / "images" / f"{tile}.tif", synth.image[window])
                io.write_png(
                    out_dir / split / "masks" / f"{tile}.png", (classes == 1) * np.uint8(1)
                )
                io.write_png(out_dir / split / "masks_axons" / f"{tile}.png", classes)
                px = np.bincount(classes.ravel(), minlength=3)
                rows.append(
                    dict(
                        zip(
                            COLUMNS,
                            (
                                tile,
                                split,
                                "200_2",
                                f"originals/200_2/{number}.tif",
                                f"200_2_{number}",
                            )
                            + (r, c, r * height, c * width, height, width)
                            + (*synth.image.shape, *px),
                            strict=True,
                        )
                    )
                )
    io.write_csv(out_dir / "manifest.csv", rows, COLUMNS)
    return out_dir


def time_loader(
    data_dir: Path, num_workers: int, cache: bool, epochs: int
) -> dict[str, float | int | bool]:
    """Setup seconds, first-epoch and steady-state train crops/s (epochs after the first)."""
    cfg = OmegaConf.load(ROOT / "conf" / "data" / "default.yaml")
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
        results = [
            time_loader(data_dir, workers, cache, args.epochs)
            for workers in args.workers
            for cache in (False, True)
        ]
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
    io.write_json(args.out, {"machine": machine, "tile_hw": [768, 1024], "results": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
