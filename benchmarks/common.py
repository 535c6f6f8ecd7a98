"""Timing, peak-memory, FLOP and machine helpers shared by the benchmark scripts.

Benchmarks compare variants side by side in one process, because the machine is shared and its
absolute speed drifts; ratios measured in one run are what the tables are read for.
"""

from __future__ import annotations

import copy
import datetime
import platform
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from neuroseg import io

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
# (channels, height, width) of the VGG 3x3 convs at 1/2, 1/4, 1/8 and 1/16 of a 512x768 crop:
# the shapes that carry most of a TernausNet's FLOPs.
PEAK_CONV_SHAPES = ((64, 256, 384), (128, 128, 192), (256, 64, 96), (512, 32, 48))
H100_BF16_DENSE_FLOPS = 989e12  # H100/H200 SXM dense bf16 tensor-core peak (no sparsity)
Batch = dict[str, torch.Tensor | list[str]]  # as the DataModule yields it
Marks = list[tuple[float, float]]  # (wall clock, process CPU time) at each batch start, seconds


@dataclass(frozen=True)
class Variant:
    """A numeric setting of a training step: memory layout and autocast dtype (None = fp32)."""

    name: str
    channels_last: bool
    autocast_dtype: torch.dtype | None

    @property
    def lightning_precision(self) -> str:
        """The Trainer `precision` string that gives the same numerics."""
        return "32-true" if self.autocast_dtype is None else "bf16-mixed"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


VARIANTS = {
    "fp32": Variant("fp32", channels_last=False, autocast_dtype=None),
    "fp32_cl": Variant("fp32_cl", channels_last=True, autocast_dtype=None),
    "bf16_cl": Variant("bf16_cl", channels_last=True, autocast_dtype=torch.bfloat16),
}


def machine_info() -> dict[str, object]:
    """CPU model, relevant ISA flags, thread count, torch version and GPU name, for the record."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(
        line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line and line.strip()
    )
    flags = set(fields.get("flags\t\t", fields.get("flags", "")).split())
    info: dict[str, object] = {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "cpu": fields.get("model name\t", platform.processor()).strip(),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock times cover it; no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Seconds of each of `repeats` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def now(device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds now, after queued GPU work.

    CPU time of all threads shows how much of the wall time this process actually ran.
    """
    synchronize(device)
    return time.perf_counter(), time.process_time()


def step_seconds(marks: Marks, warmup: int, repeats: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) durations between consecutive batch starts: `repeats` after `warmup` steps."""
    pairs = list(zip(marks, marks[1:], strict=False))[warmup : warmup + repeats]
    return [b[0] - a[0] for a, b in pairs], [b[1] - a[1] for a, b in pairs]


def random_batches(count: int, batch_size: int, hw: tuple[int, int], seed: int) -> list[Batch]:
    """`count` binary-task batches shaped as the DataModule yields them, held in memory.

    image (N, 3, H, W) float32 ~N(0, 1); target (N, 1, H, W) float32 0/1; valid (N, H, W) True.
    In memory so that both loops time the step, not image decoding.
    """
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.randn(batch_size, 3, *hw, generator=generator),
            "target": (torch.rand(batch_size, 1, *hw, generator=generator) > 0.9).float(),
            "valid": torch.ones(batch_size, *hw, dtype=torch.bool),
            "tile": [f"tile{i}" for i in range(batch_size)],
        }
        for _ in range(count)
    ]


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Median (the figure tables use), min and max of a list of timings in seconds."""
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "n": len(seconds),
    }


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False where Linux refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB since the last `reset_peak_rss`.

    VmHWM is read because it can be reset between configurations; `getrusage` is the fallback
    (its maximum covers the whole process life).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window for RSS and, on a GPU, allocated device memory."""
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float | None]:
    """Peak RSS (MiB) and, on a GPU, peak allocated device memory (MiB) since the last reset."""
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"peak_rss_mib": peak_rss_mib(), "peak_gpu_alloc_mib": gpu}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (multiply-add = 2) that `fn` dispatches, by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def model_flops(model: nn.Module, input_shape: tuple[int, int, int, int]) -> dict[str, int]:
    """Forward and forward+backward FLOPs of `model` on `input_shape` (N, C, H, W).

    Counted on a meta-device copy: shapes alone fix the count, so nothing is computed or allocated.
    """
    meta = copy.deepcopy(model).to("meta")
    x = torch.zeros(input_shape, device="meta")

    def forward() -> torch.Tensor:
        return meta(x)

    def step() -> None:
        meta(x).float().mean().backward()

    return {"forward": count_flops(forward), "train_step": count_flops(step)}


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv_peak(
    device: torch.device, dtype: torch.dtype, repeats: int, shapes: Sequence[tuple[int, int, int]]
) -> dict[str, object]:
    """GFLOP/s of channels_last 3x3 convs (forward, batch 1) at `shapes`; the best is the peak.

    The peak a UNet could approach on this machine: its FLOPs are almost all 3x3 convs.
    """
    per_shape = {}
    for channels, height, width in shapes:
        conv = nn.Conv2d(channels, channels, 3, padding=1).to(device, dtype)
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.randn(1, channels, height, width, device=device, dtype=dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            seconds = time_calls(lambda c=conv, x=x: c(x), device, warmup=2, repeats=repeats)
        flops = 2 * channels * channels * 9 * height * width
        per_shape[f"{channels}x{height}x{width}"] = flops / statistics.median(seconds) / 1e9
    return {"gflops_per_s": max(per_shape.values()), "per_shape_gflops_per_s": per_shape}


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast context for `dtype`, disabled for None (plain fp32)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def results_path(name: str) -> Path:
    """benchmarks/results/<name>.json, or `name` itself when it is a path ending in .json."""
    return Path(name) if name.endswith(".json") else RESULTS_DIR / f"{name}.json"


def write_results(name: str, payload: dict[str, object]) -> Path:
    """Write `results_path(name)` atomically and return its path."""
    path = results_path(name)
    io.write_json(path, payload)
    return path


def format_table(rows: Sequence[dict[str, object]], columns: Sequence[str]) -> str:
    """Plain-text table of `rows` under `columns`; floats get 3 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.0f}"
        return "-" if value is None else str(value)

    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def parse_hw(text: str) -> tuple[int, int]:
    """ "512x768" -> (512, 768); sides must be multiples of 32 (the UNet's input rule)."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r}: write HEIGHTxWIDTH, e.g. 512x768") from None
    if height % 32 or width % 32:
        raise ValueError(f"size {text!r}: sides must be multiples of 32, e.g. 512x768")
    return height, width


class EpochClock(pl.Callback):
    """Wall-clock seconds of each training epoch, its validation pass, and val/iou after it.

    Configs instantiate it by name inside `train(cfg)`, so records are kept on the class
    (`EpochClock.history`) for the caller to read afterwards. Lightning validates inside the
    training epoch: train_s runs to the validation start, total_s to the epoch end.
    """

    history: ClassVar[list[dict[str, float | None]]] = []

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    @staticmethod
    def clock(trainer: pl.Trainer) -> float:
        """Wall clock once the trainer's queued GPU work is done: steps no longer wait for it."""
        return now(trainer.strategy.root_device)[0]

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.marks = {"start": self.clock(trainer)}

    def on_validation_epoch_start(self, trainer: pl.Trainer, *args: object) -> None:
        if not trainer.sanity_checking:
            self.marks["val_start"] = self.clock(trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if not trainer.sanity_checking:
            self.marks["val_end"] = self.clock(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, *args: object) -> None:
        end = self.clock(trainer)
        start = self.marks["start"]
        val_start, val_end = self.marks.get("val_start", end), self.marks.get("val_end", end)
        iou = trainer.callback_metrics.get("val/iou")
        record = {"epoch": trainer.current_epoch, "train_s": val_start - start}
        record |= {"val_s": val_end - val_start, "total_s": end - start}
        record["val_iou"] = None if iou is None else float(iou)
        EpochClock.history.append(record)
