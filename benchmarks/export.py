"""CPU forward time of one 768 x 1024 window: onnxruntime on the exported ONNX file next to
PyTorch (fp32, eager) on the same wrapped network, alternating in one process, with the ratio.

Run from the repo root: `python -m benchmarks.export [--models unet11 unet16] [--rounds 3]`.
Needs `pip install -e ".[export]"`. Random weights: speed does not depend on them. Writes
benchmarks/results/export.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import format_table, machine_info, parse_hw, write_results
from neuroseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from neuroseg.models.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    GrayToProbabilities,
    write_onnx,
)
from neuroseg.models.ternausnet import build_model

MODELS = {"unet11": "vgg11", "unet16": "vgg16"}
COLUMNS = (
    "model",
    "window",
    "pytorch_s",
    "onnxruntime_s",
    "ort_over_torch",
    "max_abs_diff",
    "cpu_share",
)


def time_forward(
    run: Callable[[np.ndarray], np.ndarray], gray: np.ndarray, repeats: int
) -> tuple[list[float], list[float]]:
    """(wall, process CPU) seconds of each of `repeats` calls of `run(gray)`, after one untimed
    warm-up call; CPU over wall x threads near 1 means the cores were ours."""
    run(gray)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run(gray)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def run_one(
    model_name: str, hw: tuple[int, int], opset: int, rounds: int, repeats: int, folder: Path
) -> dict[str, object]:
    """Median forward seconds of PyTorch and onnxruntime, timed in alternating rounds so that
    both see the same machine load, and their largest output difference."""
    import onnxruntime

    torch.manual_seed(0)
    net = build_model(MODELS[model_name], 1, weights=None)
    model = GrayToProbabilities(net, IMAGENET_MEAN, IMAGENET_STD).eval()
    gray = np.random.default_rng(0).random((1, 1, *hw), dtype=np.float32)
    path = write_onnx(model, folder / f"{model_name}.onnx", torch.from_numpy(gray), opset)
    options = onnxruntime.SessionOptions()
    threads = torch.get_num_threads()
    options.intra_op_num_threads = threads  # the same cores as PyTorch
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def torch_forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    def ort_forward(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    torch_s, ort_s, torch_cpu, ort_cpu = [], [], [], []
    for _ in range(rounds):
        walls, cpus = time_forward(torch_forward, gray, repeats)
        torch_s, torch_cpu = torch_s + walls, torch_cpu + cpus
        walls, cpus = time_forward(ort_forward, gray, repeats)
        ort_s, ort_cpu = ort_s + walls, ort_cpu + cpus
    diff = float(np.abs(torch_forward(gray) - ort_forward(gray)).max())
    torch_median, ort_median = statistics.median(torch_s), statistics.median(ort_s)
    return {
        "model": model_name,
        "window": f"{hw[0]}x{hw[1]}",
        "pytorch_s": torch_median,
        "onnxruntime_s": ort_median,
        "ort_over_torch": ort_median / torch_median,
        "max_abs_diff": diff,
        "cpu_share": round(sum(torch_cpu + ort_cpu) / sum(torch_s + ort_s) / threads, 2),
        "pytorch_all_s": torch_s,
        "onnxruntime_all_s": ort_s,
        "pytorch_cpu_s": torch_cpu,
        "onnxruntime_cpu_s": ort_cpu,
        "load_average_1min": os.getloadavg()[0],
        "opset": opset,
        "onnxruntime": onnxruntime.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["unet11"])
    parser.add_argument("--size", type=parse_hw, default=(768, 1024), help="HEIGHTxWIDTH")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two runtimes")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per round")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--out", default="export")
    args = parser.parse_args()
    payload = {"machine": machine_info(), "rows": []}
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            row = run_one(model, args.size, args.opset, args.rounds, args.repeats, Path(folder))
            payload["rows"].append(row)
            path = write_results(args.out, payload)
            print(format_table(payload["rows"][-1:], COLUMNS), flush=True)
    print(format_table(payload["rows"], COLUMNS))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
