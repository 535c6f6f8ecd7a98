"""Wall time of real training epochs through `neuroseg.train.train(cfg)`, and fp32 vs bf16 quality.

Run from the repo root:
  python -m benchmarks.epoch                  # 2 epochs + validation, sample data, CPU config
  python -m benchmarks.epoch --quality        # fp32 vs bf16-mixed+channels_last, same seeds
  python -m benchmarks.epoch --gpu-full       # CUDA: 100 UNet11 epochs at the lab's resolution
  python -m benchmarks.epoch --gpu-full --epochs 3   # the same, a first look
  python -m benchmarks.epoch --gpu-full --devices 4   # ddp: per-GPU images/s against the above
Writes benchmarks/results/epoch.json, precision_quality.json (--quality), epoch_gpu.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from benchmarks.common import (
    H100_BF16_DENSE_FLOPS,
    EpochClock,
    format_table,
    machine_info,
    model_flops,
    parse_hw,
    peak_memory,
    reset_peak_memory,
    results_path,
    write_results,
)
from neuroseg import io
from neuroseg.data.sample import ensure_sample
from neuroseg.data.settings import read_group_file
from neuroseg.models.ternausnet import UNet11
from neuroseg.train import train

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# What each compared setting overrides; everything else is the shipped config.
PRECISIONS = {
    "fp32": ["trainer.precision=32-true", "model.channels_last=false"],
    "bf16_cl": ["trainer.precision=bf16-mixed", "model.channels_last=true"],
}
CLOCK = f"+callbacks.epoch_clock._target_={EpochClock.__module__}.EpochClock"


def compose_train(overrides: list[str]) -> DictConfig:
    """The shipped train config with `overrides`, as `python -m neuroseg.train` would see it."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=overrides)


def sample_overrides(work_dir: Path, per_condition: int, epochs: int, seed: int) -> list[str]:
    """experiment=demo on a sample of `per_condition` 384x512 images per condition, no test."""
    return [
        "experiment=demo",
        f"paths.data_dir={work_dir / 'data'}",
        f"sample.synth.per_condition={per_condition}",
        "encoder.weights=null",  # no download attempt; both precisions start from the same init
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        "test=false",
        CLOCK,
    ]


def timed_train(overrides: list[str], run_dir: Path) -> dict[str, object]:
    """Run train(cfg); its per-epoch clock records, fit wall time and returned metrics."""
    cfg = compose_train([*overrides, f"paths.output_dir={run_dir}"])
    EpochClock.history.clear()
    start = time.perf_counter()
    metrics = train(cfg)
    elapsed = time.perf_counter() - start
    epochs = [dict(record) for record in EpochClock.history]
    return {"wall_s": elapsed, "epochs": epochs, "val_iou": metrics.get("val/iou")}


def sample_epochs(work_dir: Path, per_condition: int, epochs: int) -> list[dict[str, object]]:
    """One run per precision on the sample data; epoch 0 includes one-off warm-up work."""
    runs = []
    for name, extra in PRECISIONS.items():
        overrides = [*sample_overrides(work_dir, per_condition, epochs, seed=0), *extra]
        run = timed_train(overrides, work_dir / "runs" / f"epoch_{name}")
        runs.append({"precision": name, "overrides": overrides, **run})
        last = run["epochs"][-1]
        print(name, f"epoch {last['total_s']:.1f} s (train {last['train_s']:.1f} s)", flush=True)
    return runs


def quality(work_dir: Path, per_condition: int, epochs: int, seeds: list[int]) -> dict[str, object]:
    """val/iou of fp32 and bf16-mixed+channels_last runs with identical seeds and data."""
    rows = []
    for seed in seeds:
        for name, extra in PRECISIONS.items():
            overrides = [*sample_overrides(work_dir, per_condition, epochs, seed), *extra]
            run = timed_train(overrides, work_dir / "runs" / f"quality_{name}_{seed}")
            best = max((e["val_iou"] or 0.0) for e in run["epochs"])
            rows.append({"precision": name, "seed": seed, "final_val_iou": run["val_iou"]})
            rows[-1] |= {"best_val_iou": best, "wall_s": run["wall_s"], "epochs": run["epochs"]}
            print(format_table(rows[-1:], ["precision", "seed", "final_val_iou", "best_val_iou"]))
    mean = {
        name: statistics.mean(r["final_val_iou"] for r in rows if r["precision"] == name)
        for name in PRECISIONS
    }
    return {"epochs": epochs, "per_condition": per_condition, "runs": rows, "mean_val_iou": mean}


def full_overrides(
    prepared: Path,
    accelerator: str,
    crop_hw: tuple[int, int],
    workers: int,
    epochs: int,
    devices: int = 1,
) -> list[str]:
    """The shipped config for `accelerator` (cpu | gpu) on `devices` (ddp above one), bf16 +
    NHWC, random init, no test."""
    if devices > 1:
        trainer = ["trainer=ddp", f"trainer.devices={devices}"]
        trainer.append(f"trainer.accelerator={accelerator}")
    else:
        trainer = [f"trainer={accelerator}"]
    return [
        *trainer,
        *(["data=gpu"] if accelerator == "gpu" else []),
        f"data.dir={prepared}",
        f"data.crop_hw=[{crop_hw[0]},{crop_hw[1]}]",
        f"data.num_workers={workers}",
        "data.cache=true",
        "encoder.weights=null",
        "model.channels_last=true",
        "trainer.precision=bf16-mixed",
        f"trainer.max_epochs={epochs}",
        "test=false",
        CLOCK,
    ]


def full_run(
    work_dir: Path,
    per_condition: int = 9,
    epochs: int = 100,
    workers: int = 8,
    accelerator: str = "gpu",
    source_hw: tuple[int, int] = (1536, 2048),
    crop_hw: tuple[int, int] = (512, 768),
    devices: int = 1,
) -> dict[str, object]:
    """UNet11 on the lab's layout: 2x2 tiles of `source_hw` sources, random `crop_hw` crops.

    `trainer=<accelerator>` (`trainer=ddp` on several `devices`) and, on a GPU, `data=gpu`
    (batch 16 per device, workers, pinned memory, cached tiles), bf16 + channels_last,
    validation every epoch. Reports training images/s in all and per device (validation
    excluded, epoch 0 too: it holds cuDNN autotuning), wall time of the whole fit, peak memory
    and the fraction of the H100/H200 dense bf16 peak that the counted FLOPs reach. The
    defaults are the lab's run (45 sources, a few more than its 41); tests run it small on CPU.
    Under ddp every process runs this function; only rank 0's result is complete.
    """
    raw, prepared = work_dir / "full" / "raw", work_dir / "full" / "prepared"
    height, width = source_hw
    synth = {"per_condition": per_condition, "seed": 0, "duplicates": 0}
    synth |= {"height": height, "width": width}
    palette = OmegaConf.to_container(read_group_file(CONF_DIR / "palette" / "qlab.yaml"))
    split = {"train": 0.7, "val": 0.1, "test": 0.2}
    prepare = {"fractions": split, "seed": 42, "rows": 2, "cols": 2, "palette": palette}
    ensure_sample(raw, prepared, synth, prepare | {"workers": max(workers, 1)})
    overrides = full_overrides(prepared, accelerator, crop_hw, workers, epochs, devices)
    device = torch.device("cuda" if accelerator == "gpu" else "cpu")
    reset_peak_memory(device)
    run = timed_train(overrides, work_dir / "runs" / f"full_{accelerator}_{devices}")
    train_tiles = sum(1 for _ in (prepared / "train" / "images").iterdir())
    timed = run["epochs"][1:] or run["epochs"]
    images_per_s = train_tiles * len(timed) / sum(e["train_s"] for e in timed)
    step_flops = model_flops(UNet11(1), (1, 3, *crop_hw))["train_step"]
    achieved = images_per_s * step_flops / devices
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else machine_info()["cpu"]
    return {
        "device": name,
        "devices": devices,
        "source_hw": list(source_hw),
        "sources": 5 * per_condition,
        "train_tiles": train_tiles,
        "images_per_s": images_per_s,
        "images_per_s_per_device": images_per_s / devices,
        "achieved_tflops_per_s_per_device": achieved / 1e12,
        "of_bf16_peak": achieved / H100_BF16_DENSE_FLOPS if device.type == "cuda" else None,
        "fit_wall_s": run["wall_s"],
        **peak_memory(device),
        "overrides": overrides,
        **run,
    }


# What must match for two runs' images/s to compare: the same sources cut into the same tiles.
SAME_WORK = ("source_hw", "sources", "train_tiles")


def scaling(full: dict[str, object], baseline: Path) -> dict[str, object]:
    """Per-device images/s of a several-device run over a one-device run's (`baseline` JSON) of
    the same data and crops; another size's run is no baseline."""
    if not baseline.is_file():
        return {"baseline": None}
    single = io.read_json(baseline)["full"]
    if any(single.get(key) != full.get(key) for key in SAME_WORK):
        return {"baseline": None}
    ratio = full["images_per_s_per_device"] / single["images_per_s"]
    return {"baseline": str(baseline), "baseline_device": single["device"], "efficiency": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument("--per-condition", type=int, help="images/condition (3; --full 9)")
    parser.add_argument("--epochs", type=int, help="default 2 (10 for --quality, 100 --full)")
    parser.add_argument("--quality", action="store_true", help="fp32 vs bf16 val/iou")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--full", action="store_true", help="the lab-resolution run")
    parser.add_argument("--gpu-full", action="store_true", help="--full --accelerator gpu")
    parser.add_argument("--accelerator", choices=["gpu", "cpu"], default="gpu", help="--full")
    parser.add_argument("--devices", type=int, default=1, help="--full: ddp above 1")
    parser.add_argument("--source-hw", type=parse_hw, default=(1536, 2048), help="--full")
    parser.add_argument("--crop-hw", type=parse_hw, default=(512, 768), help="--full")
    parser.add_argument("--workers", type=int, help="--full loader workers (gpu 8, cpu 0)")
    parser.add_argument("--out", default=None, help="results/<out>.json or a .json path")
    args = parser.parse_args()
    payload: dict[str, object] = {"machine": machine_info(), "settings": vars(args) | {}}
    payload["settings"]["work_dir"] = str(args.work_dir)
    if args.quality:
        result = quality(args.work_dir, args.per_condition or 3, args.epochs or 10, args.seeds)
        print("mean val/iou", result["mean_val_iou"])
        print("wrote", write_results(args.out or "precision_quality", payload | result))
    elif args.full or args.gpu_full:
        accelerator = "gpu" if args.gpu_full else args.accelerator
        if accelerator == "gpu" and not torch.cuda.is_available():
            raise SystemExit("--gpu-full needs a CUDA device; none is visible")
        full = full_run(
            args.work_dir, args.per_condition or 9, args.epochs or 100,
            args.workers if args.workers is not None else (8 if accelerator == "gpu" else 0),
            accelerator, args.source_hw, args.crop_hw, args.devices,
        )  # fmt: skip
        if os.environ.get("LOCAL_RANK", "0") != "0":
            return  # a ddp worker process: rank 0 reports
        single = "epoch_gpu" if accelerator == "gpu" else "epoch_full_cpu"
        name = args.out or (single if args.devices == 1 else f"{single}_ddp{args.devices}")
        if args.devices > 1:
            full |= scaling(full, results_path(single))
        columns = ["device", "devices", "images_per_s", "images_per_s_per_device", "fit_wall_s"]
        print(format_table([full], [*columns, "of_bf16_peak"]))
        print("wrote", write_results(name, payload | {"full": full}))
    else:
        runs = sample_epochs(args.work_dir, args.per_condition or 3, args.epochs or 2)
        print("wrote", write_results(args.out or "epoch", payload | {"sample": runs}))


if __name__ == "__main__":
    main()
