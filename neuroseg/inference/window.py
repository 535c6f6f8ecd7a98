"""Sliding-window inference: class probabilities (C, H, W) for a gray image of any size.

Memory is bounded by the window, not the image: windows are normalised one batch at a time and
their probabilities are blended into two float32 accumulators, so a 6000x8000 image fits on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from neuroseg.data.transforms import normalize, pad_to_multiple
from neuroseg.errors import UsageError
from neuroseg.models.ternausnet import SIZE_MULTIPLE
from neuroseg.runtime import progress_bar

__all__ = ["SIZE_MULTIPLE", "pad_to_multiple"]  # re-exported: callers pad as training does
# Flips averaged by test-time augmentation, as tensor dims of (N, C, H, W): none, h, v, both.
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Sorted window starts along one axis; windows of `window` px cover [0, size) exactly.

    Neighbours overlap by at least `overlap` (fraction of the window, in [0, 1)); the last window
    ends at `size`. A side no longer than the window gets the single start 0.
    """
    if window < 1 or size < 1:
        raise UsageError(f"window {window} and size {size} must be positive")
    if not 0.0 <= overlap < 1.0:
        raise UsageError(f"overlap {overlap}: choose a fraction in [0, 1)")
    if size <= window:
        return [0]
    stride = max(1, int(window - round(window * overlap)))
    count = int(np.ceil((size - window) / stride)) + 1
    # Spread the windows evenly so the last one ends exactly at the border.
    return sorted({int(round(i * (size - window) / (count - 1))) for i in range(count)})


def taper(length: int, min_weight: float = 1e-3) -> np.ndarray:
    """(length,) float32 cosine (Hann) taper peaking at the centre, never below `min_weight`.

    Window borders see less context than centres, so their predictions count less; the floor
    keeps the weight sum positive where only one window's border covers a pixel.
    """
    positions = (np.arange(length, dtype=np.float64) + 0.5) / length
    weights = 0.5 - 0.5 * np.cos(2.0 * np.pi * positions)
    return np.maximum(weights, min_weight).astype(np.float32)


def blend_weights(window_hw: tuple[int, int], single_hw: tuple[bool, bool]) -> np.ndarray:
    """(h, w) float32 blending weights; flat (ones) along an axis that has one window only.

    Flat weights make an image that fits one window come out exactly as the plain forward pass.
    """
    axes = [
        np.ones(length, np.float32) if single else taper(length)
        for length, single in zip(window_hw, single_hw, strict=True)
    ]
    return np.outer(axes[0], axes[1])


def probabilities(logits_nchw: torch.Tensor) -> torch.Tensor:
    """Sigmoid of a single-channel (binary) output, softmax over channels otherwise; same shape."""
    if logits_nchw.shape[1] == 1:
        return torch.sigmoid(logits_nchw)
    return torch.softmax(logits_nchw, dim=1)


PRECISIONS = ("32", "bf16")


def forward_probs(model: nn.Module, batch_nchw: torch.Tensor, tta: bool) -> torch.Tensor:
    """(N, C, h, w) probabilities of one batch; with `tta`, the mean over h/v flips."""
    if not tta:
        return probabilities(model(batch_nchw))
    total = None
    for dims in TTA_FLIPS:
        flipped = torch.flip(batch_nchw, dims) if dims else batch_nchw
        probs = probabilities(model(flipped))
        probs = torch.flip(probs, dims) if dims else probs
        total = probs if total is None else total + probs
    return total / len(TTA_FLIPS)


def batched(items: Sequence[tuple[int, int]], size: int) -> Iterator[Sequence[tuple[int, int]]]:
    """Consecutive chunks of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_window(window_hw: Sequence[int]) -> tuple[int, int]:
    """(h, w) of a window given in config; both positive multiples of 32 else ValueError."""
    sides = [int(side) for side in window_hw]
    if len(sides) != 2 or any(side < 1 or side % SIZE_MULTIPLE for side in sides):
        raise UsageError(
            f"window {list(window_hw)}: give [height, width], positive multiples of {SIZE_MULTIPLE}"
        )
    return sides[0], sides[1]


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    unit_gray: np.ndarray,
    window: Sequence[int] = (768, 1024),
    overlap: float = 0.25,
    batch_size: int = 1,
    tta: bool = False,
    device: torch.device | str = "cpu",
    precision: str | int = 32,
    progress: bool = False,
) -> np.ndarray:
    """Class probabilities (C, H, W) float32 in [0, 1] of a gray (H, W) image in [0, 1].

    C is 1 for a binary model (sigmoid) and the class count otherwise (softmax). The image is
    reflect-padded to multiples of 32, cut into overlapping windows (clipped to the padded image),
    run `batch_size` windows at a time and blended with cosine weights; padding is cropped off.
    `precision` "bf16" runs the network under bf16 autocast (faster on CPUs with AMX/AVX512-BF16
    and on GPUs; probabilities move by about 1e-3); blending stays float32. `progress` draws a
    bar over the window batches (a 5000 x 7000 image takes minutes on a CPU).
    """
    if unit_gray.ndim != 2:
        raise ValueError(f"expected a gray (H, W) image, got shape {unit_gray.shape}")
    if batch_size < 1:
        raise UsageError(f"batch_size {batch_size}: choose 1 or more")
    if str(precision) not in PRECISIONS:
        raise UsageError(f"precision {precision!r}: choose one of {list(PRECISIONS)}")
    autocast = torch.autocast(
        torch.device(device).type, dtype=torch.bfloat16, enabled=str(precision) == "bf16"
    )
    height, width = unit_gray.shape
    padded = pad_to_multiple(unit_gray.astype(np.float32, copy=False))
    win_h, win_w = (min(w, s) for w, s in zip(check_window(window), padded.shape, strict=True))
    ys = window_starts(padded.shape[0], win_h, overlap)
    xs = window_starts(padded.shape[1], win_w, overlap)
    weights = blend_weights((win_h, win_w), (len(ys) == 1, len(xs) == 1))
    weights_t = torch.from_numpy(weights)
    total: torch.Tensor | None = None
    weight_sum = torch.zeros(padded.shape, dtype=torch.float32)
    starts = [(y, x) for y in ys for x in xs]
    chunks = progress_bar(
        batched(starts, batch_size),
        "windows",
        "batch",
        total=math.ceil(len(starts) / batch_size),
        enabled=progress,
        leave=False,
    )
    for chunk in chunks:
        windows = np.stack([normalize(padded[y : y + win_h, x : x + win_w]) for y, x in chunk])
        with autocast:
            probs = forward_probs(model, torch.from_numpy(windows).to(device), tta)
        probs = probs.float().cpu()
        if total is None:
            total = torch.zeros((probs.shape[1], *padded.shape), dtype=torch.float32)
        for (y, x), window_probs in zip(chunk, probs, strict=True):
            total[:, y : y + win_h, x : x + win_w] += window_probs * weights_t
            weight_sum[y : y + win_h, x : x + win_w] += weights_t
    total /= weight_sum
    return np.ascontiguousarray(total[:, :height, :width].numpy())


def probs_to_mask(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(H, W) uint8 class map: binary probabilities (1, H, W) > threshold, else argmax over C."""
    if probs.shape[0] == 1:
        return (probs[0] > threshold).astype(np.uint8)
    return probs.argmax(axis=0).astype(np.uint8)


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; any other name is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
