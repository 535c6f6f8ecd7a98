"""Seconds per lab-size image and peak RSS of sliding-window prediction, UNet11/UNet16, +/- TTA.

Run from the repo root:
`python -m benchmarks.predict [--models unet11] [--tta off] [--precision 32 bf16]`.
Window, overlap and batch size are conf/predict.yaml's, so the numbers describe `neuroseg.predict`.
Writes benchmarks/results/predict.json. Random weights: speed does not depend on them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from benchmarks.common import (
    format_table,
    machine_info,
    parse_hw,
    peak_memory,
    reset_peak_memory,
    synchronize,
    write_results,
)
from neuroseg.inference.settings import inference_settings
from neuroseg.inference.window import predict_probs, resolve_device, window_starts
from neuroseg.models.ternausnet import build_model

MODELS = {"unet11": "vgg11", "unet16": "vgg16"}
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
COLUMNS = ("model", "tta", "precision", "windows", "s_per_image", "cpu_s_per_image", "peak_rss_mib")


def predict_settings() -> dict[str, object]:
    """window, overlap and batch_size as `python -m neuroseg.predict` uses them by default."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("predict", overrides=["input=unused", "output=unused"])
    shipped = inference_settings(cfg, stage="benchmark")
    return {"window": shipped.window, "overlap": shipped.overlap, "batch_size": shipped.batch_size}


def run_one(
    model_name: str,
    tta: bool,
    precision: str,
    image: np.ndarray,
    settings: dict,
    device: torch.device,
    repeats: int,
) -> dict[str, object]:
    """Median wall and CPU seconds of `repeats` predictions of `image`, and the peak RSS."""
    torch.manual_seed(0)
    model = build_model(MODELS[model_name], 1, weights=None).eval().to(device)
    reset_peak_memory(device)
    walls, cpus = [], []
    for _ in range(repeats):
        synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        predict_probs(model, image, tta=tta, device=device, precision=precision, **settings)
        synchronize(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    window = [min(w, s + (-s % 32)) for w, s in zip(settings["window"], image.shape, strict=True)]
    counts = [
        len(window_starts(s + (-s % 32), w, settings["overlap"]))
        for s, w in zip(image.shape, window, strict=True)
    ]
    return {
        "model": model_name,
        "tta": tta,
        "precision": precision,
        "windows": counts[0] * counts[1],
        "s_per_image": float(np.median(walls)),
        "cpu_s_per_image": float(np.median(cpus)),
        "repeats": repeats,
    } | peak_memory(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--tta", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--precision", nargs="+", choices=("32", "bf16"), default=["32", "bf16"])
    parser.add_argument("--size", type=parse_hw, default=(1536, 2048), help="HEIGHTxWIDTH")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (the default), cuda, ...")
    args = parser.parse_args()
    device = resolve_device(args.device)
    settings = predict_settings()
    image = np.random.default_rng(0).random(args.size, dtype=np.float32)
    payload = {"machine": machine_info(), "image_hw": list(args.size), **settings, "rows": []}
    for model in args.models:
        for tta in args.tta:
            for precision in args.precision:
                row = run_one(model, tta == "on", precision, image, settings, device, args.repeats)
                payload["rows"].append(row)
                # Written after every row: a long run stopped early keeps what it measured.
                path = write_results("predict", payload)
                print(format_table(payload["rows"][-1:], COLUMNS), flush=True)
    print(format_table(payload["rows"], COLUMNS))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
