"""Seconds per full-size image for `prepare_dataset`: 41 synthetic 1536x2048 originals.

Run: .venv/bin/python benchmarks/prepare.py   (writes benchmarks/results/prepare.json)

One BLAS thread per process, as prepare's pool workers use: set before numpy loads, so the
in-process run (workers=1) is measured the same way.
"""

from __future__ import annotations

import os
import platform
import resource
import tempfile
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy loads (below)

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from neuroseg import io  # noqa: E402
from neuroseg.data.build import prepare_dataset  # noqa: E402
from neuroseg.data.labels import class_mask, neuron_mask  # noqa: E402
from neuroseg.data.sample_tree import make_dataset  # noqa: E402
from neuroseg.data.settings import read_group_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "prepare.json"
PER_CONDITION, DUPLICATES = 8, 1  # 5 conditions x 8 + 1 copy = 41 originals, 40 distinct


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the pool workers).

    On a shared machine wall time follows the load; CPU time does not, and CPU time divided by
    the worker count is the wall time an idle machine with that many cores would show.
    """
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_prepare(raw_dir: Path, out_dir: Path, workers: int, bit_depth: int) -> dict[str, float]:
    """Prepare `raw_dir` with the shipped defaults; seconds in all and per original read."""
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("prepare")
    cpu_before = cpu_seconds()
    start = time.perf_counter()
    prepare_dataset(
        raw_dir=raw_dir,
        out_dir=out_dir,
        fractions=OmegaConf.to_container(cfg.split),
        seed=cfg.seed,
        rows=cfg.tiles.rows,
        cols=cfg.tiles.cols,
        palette=OmegaConf.to_container(cfg.palette, resolve=True),
        overwrite=True,
        workers=workers,
    )
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_before
    originals = len(list((raw_dir / "originals").rglob("*.tif")))
    return {
        "bit_depth": bit_depth,
        "workers": workers,
        "originals": originals,
        "seconds": round(seconds, 2),
        "seconds_per_image": round(seconds / originals, 3),
        "cpu_seconds_per_image": round(cpu / originals, 3),
        # What an idle machine with `workers` free cores would take: CPU time shared by workers.
        "projected_idle_seconds_per_image": round(
            cpu / originals / min(workers, os.cpu_count() or 1), 3
        ),
    }


def time_labels(raw_dir: Path, palette: dict, count: int = 4) -> float:
    """CPU seconds per image spent turning its two painted labels into masks (labels.py)."""
    pairs = sorted((raw_dir / "labels").rglob("*.jpg"))[:count]
    rgbs = [
        (
            io.read_rgb(path),
            io.read_rgb(raw_dir / "labels_axons" / path.relative_to(raw_dir / "labels")),
        )
        for path in pairs
    ]
    start = time.process_time()
    for neurons_rgb, axons_rgb in rgbs:
        neuron_mask(neurons_rgb, palette)
        class_mask(axons_rgb, palette)
    return round((time.process_time() - start) / len(pairs), 3)


def main() -> None:
    """Generate the raw trees, time each setting, print a table and save it as JSON."""
    load_before = os.getloadavg()[0]  # the machine may be shared: timings scale with its load
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for bit_depth, worker_counts in ((8, (1, 2)), (16, (2,))):
            raw_dir = Path(tmp) / f"raw{bit_depth}"
            make_dataset(
                raw_dir,
                per_condition=PER_CONDITION,
                duplicates=DUPLICATES,
                bit_depth=bit_depth,
                seed=0,
            )
            for workers in worker_counts:
                results.append(time_prepare(raw_dir, Path(tmp) / "prepared", workers, bit_depth))
        palette = OmegaConf.to_container(read_group_file(ROOT / "conf" / "palette" / "qlab.yaml"))
        labels_seconds = time_labels(Path(tmp) / "raw8", palette)
    header = ("bits", "workers", "images", "seconds", "s/image", "cpu s/image", "proj. idle s")
    print("{:>4} {:>7} {:>6} {:>8} {:>8} {:>11} {:>12}".format(*header))
    for r in results:
        print(
            f"{r['bit_depth']:>4} {r['workers']:>7} {r['originals']:>6} {r['seconds']:>8.2f} "
            f"{r['seconds_per_image']:>8.3f} {r['cpu_seconds_per_image']:>11.3f} "
            f"{r['projected_idle_seconds_per_image']:>12.3f}"
        )
    print(f"of which painted labels -> masks (labels.py): {labels_seconds:.3f} cpu s/image")
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    io.write_json(
        RESULTS,
        {
            "machine": machine,
            "image_hw": [1536, 2048],
            "results": results,
            "labels_cpu_seconds_per_image": labels_seconds,
        },
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
