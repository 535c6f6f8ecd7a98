"""Seconds per UNet11/UNet16 training step: fp32 NCHW, channels_last, bf16; plain vs Lightning.

Run from the repo root: `python -m benchmarks.train_step [--quick] [--sizes 512x768] [--compile]`.
Writes benchmarks/results/train_step.json. All variants run in one process, so the ratios hold
even when the shared machine's absolute speed drifts.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
import tempfile
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.common import (
    PEAK_CONV_SHAPES,
    VARIANTS,
    Batch,
    Marks,
    Variant,
    autocast,
    conv_peak,
    format_table,
    machine_info,
    model_flops,
    now,
    parse_hw,
    peak_memory,
    random_batches,
    reset_peak_memory,
    step_seconds,
    summarize,
    time_calls,
    write_results,
)
from neuroseg.inference.window import resolve_device
from neuroseg.training.metrics import SegmentationMetrics
from neuroseg.training.module import SegmentationModule
from neuroseg.training.progress import ProgressBar

MODELS = {"unet11": "vgg11", "unet16": "vgg16"}


def build_module(model: str, variant: Variant, compile_model: bool = False) -> SegmentationModule:
    """The project's LightningModule with random weights, Adam lr 1e-3 (the original's)."""
    torch.manual_seed(0)
    return SegmentationModule(
        encoder=MODELS[model],
        task="binary",
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        channels_last=variant.channels_last,
        compile=compile_model,
    )


def plain_loop(
    module: SegmentationModule, batches: list[Batch], variant: Variant, device: torch.device
) -> Marks:
    """Batch-start times of a bare PyTorch loop: forward, project loss, backward, Adam step."""
    module = module.to(device).train()
    optimizer = module.make_optimizer(module.parameters())
    marks = []
    for batch in batches:
        marks.append(now(device))
        image = batch["image"].to(device).contiguous(memory_format=variant.memory_format)
        target, valid = batch["target"].to(device), batch["valid"].to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, variant.autocast_dtype):
            loss = module.loss(module.model(image), target, valid)
        loss.backward()
        optimizer.step()
    marks.append(now(device))
    return marks


class BatchClock(pl.Callback):
    """Records the wall-clock time at each training batch start (after queued GPU work)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: Marks = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self.marks.append(now(self.device))

    def on_train_epoch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self.marks.append(now(self.device))


def lightning_loop(
    module: SegmentationModule, batches: list[Batch], variant: Variant, device: torch.device
) -> Marks:
    """Batch-start times of `Trainer.fit`: default logger, the shipped progress bar and logging
    interval (conf/callbacks, conf/trainer), no validation."""
    clock = BatchClock(device)
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            precision=variant.lightning_precision,
            max_epochs=1,
            limit_train_batches=len(batches),
            limit_val_batches=0,
            enable_checkpointing=False,  # a per-epoch save, not per-step cost; spares the disk
            default_root_dir=root,
            log_every_n_steps=10,
            callbacks=[clock, ProgressBar()],
        )
        trainer.fit(module, DataLoader(batches, batch_size=None))
    return clock.marks


LOOPS = {"plain": plain_loop, "lightning": lightning_loop}


def measure(
    model: str,
    batch_size: int,
    hw: tuple[int, int],
    variant: Variant,
    loops: Sequence[str],
    steps: tuple[int, int, int],
    device: torch.device,
) -> list[dict[str, object]]:
    """One row per loop: step times and peak memory for one model/batch/size/variant.

    `steps` = (warmup, repeats, rounds): the loops alternate `rounds` times (plain, Lightning,
    plain, ...) so that drifting load on the shared machine hits both alike.
    """
    warmup, repeats, rounds = steps
    batches = random_batches(warmup + repeats + 1, batch_size, hw, seed=0)
    wall: dict[str, list[float]] = {loop: [] for loop in loops}
    cpu: dict[str, list[float]] = {loop: [] for loop in loops}
    memory: dict[str, dict[str, float | None]] = {}
    for _ in range(rounds):
        for loop in loops:
            module = build_module(model, variant)
            reset_peak_memory(device)
            marks = LOOPS[loop](module, batches, variant, device)
            memory[loop] = peak_memory(device)
            seconds, cpu_seconds = step_seconds(marks, warmup, repeats)
            wall[loop] += seconds
            cpu[loop] += cpu_seconds
    rows = []
    for loop in loops:
        row = {"model": model, "batch": batch_size, "size": f"{hw[0]}x{hw[1]}"}
        row |= {"variant": variant.name, "loop": loop, **summarize(wall[loop]), **memory[loop]}
        threads = torch.get_num_threads()
        # CPU seconds per step (all threads) hardly change with load from other processes; the
        # share of the wall time this process ran says how busy the machine was (1 = idle).
        row["cpu_s"] = statistics.mean(cpu[loop]) if device.type == "cpu" else None
        row["cpu_share"] = (
            sum(cpu[loop]) / sum(wall[loop]) / threads if device.type == "cpu" else None
        )
        rows.append(row)
    return rows


def metric_update_seconds(
    batch_size: int, hw: tuple[int, int], variant: Variant, repeats: int, device: torch.device
) -> float:
    """Median seconds of one `SegmentationMetrics.update`, the per-step work Lightning adds."""
    metrics = SegmentationMetrics("binary").to(device)
    dtype = variant.autocast_dtype or torch.float32
    logits = torch.randn(batch_size, 1, *hw, device=device, dtype=dtype)
    target = (torch.rand(batch_size, 1, *hw, device=device) > 0.9).float()
    valid = torch.ones(batch_size, *hw, dtype=torch.bool, device=device)
    seconds = time_calls(lambda: metrics.update(logits, target, valid), device, 1, repeats)
    return summarize(seconds)["median_s"]


def measure_compile(
    model: str, batch_size: int, hw: tuple[int, int], variant: Variant, repeats: int
) -> dict[str, object]:
    """torch.compile (as model.compile=true does) vs eager: compile time and steady step time."""
    device = torch.device("cpu") if not torch.cuda.is_available() else torch.device("cuda")
    row: dict[str, object] = {"model": model, "batch": batch_size, "size": f"{hw[0]}x{hw[1]}"}
    row["variant"] = variant.name
    for name, compile_model in (("eager", False), ("compiled", True)):
        batches = random_batches(repeats + 2, batch_size, hw, seed=0)
        marks = plain_loop(build_module(model, variant, compile_model), batches, variant, device)
        durations, cpu = step_seconds(marks, warmup=0, repeats=repeats + 1)
        row[f"{name}_first_step_s"] = durations[0]
        row[f"{name}_median_s"] = summarize(durations[1:])["median_s"]
        row[f"{name}_cpu_s"] = statistics.mean(cpu[1:])
    row["compile_s"] = row["compiled_first_step_s"] - row["eager_median_s"]
    row["speedup"] = row["eager_median_s"] / row["compiled_median_s"]
    row["cpu_speedup"] = row["eager_cpu_s"] / row["compiled_cpu_s"]
    return row


def overhead_probe(
    batch_size: int, hw: tuple[int, int], variant: Variant, repeats: int, device: torch.device
) -> dict[str, object]:
    """Lightning's fixed per-step cost in seconds: both loops with a 1x1-conv stand-in network.

    With the U-Net's seconds of compute gone, what remains is loss, metric update, logging,
    progress bar and hooks at the real batch shape; the difference is robust to a busy machine.
    """
    batches = random_batches(1, batch_size, hw, seed=0) * (repeats + 4)
    seconds = {}
    for loop in LOOPS:
        module = build_module("unet11", variant)
        module.model = nn.Conv2d(3, 1, kernel_size=1).to(memory_format=variant.memory_format)
        marks = LOOPS[loop](module, batches, variant, device)
        seconds[loop] = summarize(step_seconds(marks, 3, repeats)[0])["median_s"]
    row = {"batch": batch_size, "size": f"{hw[0]}x{hw[1]}", "variant": variant.name}
    row |= {"plain_probe_s": seconds["plain"], "lightning_probe_s": seconds["lightning"]}
    row["lightning_extra_s"] = seconds["lightning"] - seconds["plain"]
    return row


def add_rates(
    rows: list[dict[str, object]], flops: dict[str, int], peaks: dict[str, float]
) -> None:
    """Add GFLOP per step, achieved GFLOP/s and the fraction of the matching conv peak."""
    for row in rows:
        step_flops = flops[f"{row['model']}/{row['batch']}/{row['size']}"]  # fwd + bwd
        dtype = "bf16" if row["variant"].startswith("bf16") else "fp32"
        row["gflop_per_step"] = step_flops / 1e9
        row["gflops_per_s"] = step_flops / row["median_s"] / 1e9
        row["of_conv_peak"] = row["gflops_per_s"] / peaks[dtype]


def lightning_overhead(
    rows: list[dict[str, object]], probes: dict[str, dict[str, object]]
) -> list[dict[str, object]]:
    """(Lightning - plain) / plain step time per model/batch/size/variant, by median and by min.

    `probes` (key "<batch>/<size>/<variant>") hold `overhead_probe`'s fixed Lightning cost per
    step and the metric update's cost; `extra_share` is that fixed cost over the plain step.
    """
    keys = ("model", "batch", "size", "variant")
    plain = {tuple(r[k] for k in keys): r for r in rows if r["loop"] == "plain"}
    out = []
    for row in (r for r in rows if r["loop"] == "lightning"):
        base = plain.get(tuple(row[k] for k in keys))
        if base is None:
            continue
        entry = {k: row[k] for k in keys} | {"plain_s": base["median_s"]}
        entry["lightning_s"] = row["median_s"]
        entry["overhead"] = row["median_s"] / base["median_s"] - 1
        entry["overhead_min"] = row["min_s"] / base["min_s"] - 1
        probe = probes[f"{row['batch']}/{row['size']}/{row['variant']}"]
        entry["lightning_extra_s"] = probe["lightning_extra_s"]
        entry["extra_share"] = probe["lightning_extra_s"] / base["median_s"]
        entry["metric_update_s"] = probe["metric_update_s"]
        out.append(entry)
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x384, batch 1, 2 repeats")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=None, help="default 1 4")
    parser.add_argument("--sizes", nargs="+", default=None, help="HxW, default 512x768")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--loops", nargs="+", default=list(LOOPS), choices=list(LOOPS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="timed steps, default 3")
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the loops")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--compile-only", action="store_true", help="only the compile table")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda if present)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", default="train_step", help="results/<out>.json")
    args = parser.parse_args()
    args.batches = args.batches or ([1] if args.quick else [1, 4])
    args.sizes = [parse_hw(s) for s in args.sizes or (["256x384"] if args.quick else ["512x768"])]
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.compile = args.compile or args.compile_only
    return args


def step_table(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """Conv peaks, FLOPs, step rows and Lightning overhead for every requested combination."""
    repeats = 3 if args.quick else 5
    peaks = {
        name: conv_peak(device, dtype, repeats, PEAK_CONV_SHAPES)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }
    print({name: round(p["gflops_per_s"]) for name, p in peaks.items()}, "GFLOP/s conv peak")
    flops, params, rows, probes = {}, {}, [], {}
    for model in args.models:
        network = build_module(model, VARIANTS["fp32"]).model
        params[model] = sum(p.numel() for p in network.parameters())
        for hw, batch in itertools.product(args.sizes, args.batches):
            key = f"{model}/{batch}/{hw[0]}x{hw[1]}"
            counted = model_flops(network, (batch, 3, *hw))
            flops[key], flops[f"{key}/forward"] = counted["train_step"], counted["forward"]
            for name in args.variants:
                steps = (args.warmup, args.repeats, args.rounds)
                rows += measure(model, batch, hw, VARIANTS[name], args.loops, steps, device)
                probe_key = f"{batch}/{hw[0]}x{hw[1]}/{name}"
                if probe_key not in probes and "lightning" in args.loops:
                    probes[probe_key] = overhead_probe(batch, hw, VARIANTS[name], 20, device)
                    probes[probe_key]["metric_update_s"] = metric_update_seconds(
                        batch, hw, VARIANTS[name], 5, device
                    )
                for row in rows[-len(args.loops) :]:
                    print(key, name, row["loop"], f"{row['median_s']:.3f} s/step", flush=True)
    add_rates(rows, flops, {name: p["gflops_per_s"] for name, p in peaks.items()})
    overhead = lightning_overhead(rows, probes)
    columns = ["model", "batch", "size", "variant", "loop", "median_s", "min_s", "gflops_per_s"]
    columns += ["of_conv_peak", "cpu_s", "cpu_share", "peak_rss_mib", "peak_gpu_alloc_mib"]
    print(format_table(rows, columns))
    columns = ["model", "batch", "size", "variant", "plain_s", "lightning_s", "overhead"]
    columns += ["overhead_min", "lightning_extra_s", "extra_share", "metric_update_s"]
    print(format_table(overhead, columns))
    return {"conv_peak": peaks, "flops": flops, "parameters": params, "rows": rows} | {
        "lightning_overhead": overhead,
        "overhead_probes": list(probes.values()),
    }


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    payload: dict[str, object] = {"machine": machine_info(), "device": str(device)}
    payload["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    if not args.compile_only:
        payload |= step_table(args, device)
    if args.compile:
        compiled = []
        for model, name in itertools.product(args.models, args.variants):
            hw, batch = args.sizes[0], args.batches[0]
            compiled.append(measure_compile(model, batch, hw, VARIANTS[name], args.repeats))
            print(format_table(compiled[-1:], list(compiled[-1])), flush=True)
        payload["compile"] = compiled
    print("wrote", write_results(args.out, payload))


if __name__ == "__main__":
    main()
