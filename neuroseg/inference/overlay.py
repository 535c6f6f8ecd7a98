"""Colour overlays for a quick look: predicted classes over the gray image, truth outlined."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.segmentation import find_boundaries

# RGB per foreground class (neurons, axons), as the original drew them; predict and evaluate take
# theirs from config, TensorBoard panels use these.
CLASS_COLORS = ((0, 255, 0), (255, 0, 0))


def gray_to_rgb8(gray: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 display copy of an (H, W) uint8/uint16 image (uint16 keeps its top byte)."""
    if gray.dtype == np.uint16:
        gray = (gray >> 8).astype(np.uint8)
    elif gray.dtype != np.uint8:
        raise ValueError(f"pixel type {gray.dtype}: expected uint8 or uint16")
    return np.repeat(gray[..., None], 3, axis=-1)


def overlay(
    gray: np.ndarray,
    mask: np.ndarray,
    colors: Sequence[Sequence[int]],
    alpha: float = 0.5,
    truth: np.ndarray | None = None,
    outline_color: Sequence[int] = (255, 255, 0),
) -> np.ndarray:
    """(H, W, 3) uint8: gray image, class c > 0 of `mask` tinted with colors[c - 1] at `alpha`.

    With `truth`, the borders of its foreground classes are drawn opaque in `outline_color`,
    so misses and false alarms show against the tint.
    """
    rgb = gray_to_rgb8(gray).astype(np.float32)
    for class_id, color in enumerate(colors, start=1):
        region = mask == class_id
        rgb[region] = (1.0 - alpha) * rgb[region] + alpha * np.asarray(color, np.float32)
    if truth is not None:
        edges = find_boundaries(truth, mode="inner") & (truth > 0)
        rgb[edges] = np.asarray(outline_color, np.float32)
    return rgb.round().clip(0, 255).astype(np.uint8)
