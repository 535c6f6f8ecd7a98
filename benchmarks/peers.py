"""Our UNet11 next to segmentation_models_pytorch's Unet(vgg11): same step, loss and optimiser.

Run from the repo root: `python -m benchmarks.peers [--sizes 512x768] [--batches 1]`. Needs the
optional `peers` extra (`pip install segmentation-models-pytorch`); without it, says so and exits.
Writes benchmarks/results/peers.json. Parameter and FLOP counts are printed beside the times,
because the two networks do not do the same work: a time ratio alone would mislead.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys

import torch
from torch import nn

from benchmarks.common import (
    VARIANTS,
    Variant,
    format_table,
    machine_info,
    model_flops,
    parameter_count,
    parse_hw,
    random_batches,
    step_seconds,
    summarize,
    write_results,
)
from benchmarks.train_step import build_module, plain_loop
from neuroseg.inference.window import resolve_device
from neuroseg.training.module import SegmentationModule

NETWORKS = ("neuroseg_unet11", "smp_unet_vgg11")


def smp_unet_vgg11() -> nn.Module:
    """smp's Unet with a VGG11 encoder, random weights, one output channel (binary task)."""
    import segmentation_models_pytorch as smp

    return smp.Unet(encoder_name="vgg11", encoder_weights=None, classes=1)


def peer_module(network: str, variant: Variant) -> SegmentationModule:
    """Our LightningModule (loss, Adam) holding `network`, so both run the identical step."""
    module = build_module("unet11", variant)
    if network == "smp_unet_vgg11":
        torch.manual_seed(0)
        module.model = smp_unet_vgg11().to(memory_format=variant.memory_format)
    return module


def measure(
    hw: tuple[int, int], batch_size: int, variant: Variant, steps: tuple[int, int, int]
) -> list[dict[str, object]]:
    """Step-time rows of both networks, alternated `rounds` times on the same batches."""
    warmup, repeats, rounds = steps
    device = resolve_device("auto")
    batches = random_batches(warmup + repeats + 1, batch_size, hw, seed=0)
    seconds: dict[str, list[float]] = {network: [] for network in NETWORKS}
    for _, network in itertools.product(range(rounds), NETWORKS):
        marks = plain_loop(peer_module(network, variant), batches, variant, device)
        seconds[network] += step_seconds(marks, warmup, repeats)[0]
    rows = []
    for network in NETWORKS:
        row = {"network": network, "batch": batch_size, "size": f"{hw[0]}x{hw[1]}"}
        rows.append(row | {"variant": variant.name, **summarize(seconds[network])})
    rows[1]["time_ratio"] = rows[1]["median_s"] / rows[0]["median_s"]
    return rows


def counts(hw: tuple[int, int], batch_size: int) -> list[dict[str, object]]:
    """Parameters and forward / training-step GFLOPs of both networks at one input shape."""
    rows = []
    for network in NETWORKS:
        model = peer_module(network, VARIANTS["fp32"]).model
        flops = model_flops(model, (batch_size, 3, *hw))
        rows.append(
            {
                "network": network,
                "batch": batch_size,
                "size": f"{hw[0]}x{hw[1]}",
                "parameters": parameter_count(model),
                "forward_gflop": flops["forward"] / 1e9,
                "train_step_gflop": flops["train_step"] / 1e9,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x768"], help="HxW, multiples of 32")
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--variants", nargs="+", default=["fp32_cl", "bf16_cl"], choices=VARIANTS)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternations of the two networks")
    args = parser.parse_args()
    if importlib.util.find_spec("segmentation_models_pytorch") is None:
        print(
            "segmentation_models_pytorch is not installed; skipping the peer comparison. "
            "Install it with `.venv/bin/pip install segmentation-models-pytorch` (extra `peers`)."
        )
        sys.exit(0)
    sizes = [parse_hw(size) for size in args.sizes]
    count_rows, time_rows = [], []
    for hw, batch in itertools.product(sizes, args.batches):
        count_rows += counts(hw, batch)
        print(format_table(count_rows[-2:], list(count_rows[-1])), flush=True)
        for name in args.variants:
            steps = (args.warmup, args.repeats, args.rounds)
            time_rows += measure(hw, batch, VARIANTS[name], steps)
            print(format_table(time_rows[-2:], list(time_rows[-1])), flush=True)
    payload = {"machine": machine_info(), "settings": vars(args), "counts": count_rows}
    print("wrote", write_results("peers", payload | {"steps": time_rows}))


if __name__ == "__main__":
    main()
