"""Small pictures of what analyze measured: each image shrunk, its mask's neurons and axons
tinted (inference/overlay.py), the found lattice's two axes drawn as thin lines, and the
boundary of its grid map where there is one.

Angles follow grid.py's convention: degrees counter-clockwise from the image x axis as
displayed, so a line at angle a steps (row, col) = (-sin a, cos a).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.draw import line_aa
from skimage.measure import block_reduce
from skimage.segmentation import find_boundaries

from neuroseg.inference.overlay import overlay
from neuroseg.io import to_gray
from neuroseg.report.settings import ReportSettings

# Display stretch: the gray range between these percentiles fills 0..255 (dim brightfield
# fields otherwise show as near-black thumbnails); a display choice, no measurement uses it.
STRETCH_PERCENTILES = (0.5, 99.5)


def shrink_factor(shape: tuple[int, ...], max_px: int) -> int:
    """Integer factor that brings the longer side of `shape` to at most `max_px`."""
    return max(1, math.ceil(max(shape[:2]) / max_px))


def padded(array: np.ndarray, factor: int) -> np.ndarray:
    """(H', W') `array` (H, W) edge-padded to multiples of `factor`, so every block is whole."""
    pad = [(0, -size % factor) for size in array.shape[:2]]
    return np.pad(array, pad, mode="edge")


def stretched_gray(image: np.ndarray, factor: int) -> np.ndarray:
    """(h, w) uint8: `image` (H, W) or (H, W, 3), any dtype, block-averaged by `factor` and
    stretched between STRETCH_PERCENTILES."""
    gray = to_gray(image) if image.ndim == 3 else image
    small = block_reduce(padded(gray.astype(np.float32), factor), (factor, factor), np.mean)
    low, high = np.percentile(small, STRETCH_PERCENTILES)
    scaled = (small - low) / max(float(high - low), 1e-6)
    return (scaled.clip(0.0, 1.0) * 255.0).round().astype(np.uint8)


def shrink_classes(mask: np.ndarray, axon_value: int, factor: int) -> np.ndarray:
    """(h, w) uint8 0/1/2 (background, neurons, axons): a block holding any axon pixel is an
    axon, else any neuron pixel a neuron, so one-pixel axons survive the shrinking."""
    mask = padded(mask, factor)
    axons = block_reduce(mask == axon_value, (factor, factor), np.max)
    neurons = block_reduce((mask == 1) & (mask != axon_value), (factor, factor), np.max)
    return np.where(axons, 2, np.where(neurons, 1, 0)).astype(np.uint8)


def axis_lines(
    angle_deg: float, shape: tuple[int, int], lines: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of parallel lines at `angle_deg` across an image of `shape` (h, w), about
    `lines` of them per longer side: (rows, cols, coverage in [0, 1]), inside the image only."""
    height, width = shape
    step = max(height, width) / lines
    angle = math.radians(angle_deg)
    along = np.array([-math.sin(angle), math.cos(angle)])  # (row, col) step of the line
    across = np.array([math.cos(angle), math.sin(angle)])  # perpendicular to it
    centre, reach = np.array([height, width]) / 2.0, math.hypot(height, width) / 2.0
    parts = []
    for k in range(-math.ceil(reach / step), math.ceil(reach / step) + 1):
        origin = centre + (k + 0.5) * step * across
        (r0, c0), (r1, c1) = np.round(origin - reach * along), np.round(origin + reach * along)
        parts.append(line_aa(int(r0), int(c0), int(r1), int(c1)))
    rows, cols, values = (np.concatenate(p) for p in zip(*parts, strict=True))
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return rows[inside], cols[inside], values[inside]


def blend(rgb: np.ndarray, rows: np.ndarray, cols: np.ndarray, alpha: np.ndarray, color) -> None:
    """Paint `color` over `rgb` (h, w, 3) uint8 at (rows, cols) with per-pixel opacity."""
    base = rgb[rows, cols].astype(np.float32)
    mixed = (1.0 - alpha[:, None]) * base + alpha[:, None] * np.asarray(color, np.float32)
    rgb[rows, cols] = mixed.round().clip(0, 255).astype(np.uint8)


def analysis_thumbnail(
    image: np.ndarray,
    mask: np.ndarray,
    grid_angle_deg: float | None,
    settings: ReportSettings,
    axon_value: int,
    grid_map: np.ndarray | None = None,
) -> np.ndarray:
    """(h, w, 3) uint8: the image shrunk to settings.thumbnail_px, neurons and axons of `mask`
    tinted, the lattice axes at `grid_angle_deg` (None: none found) and `grid_map`'s
    boundary ((H, W) bool, where pillars are) drawn over it."""
    factor = shrink_factor(image.shape, settings.thumbnail_px)
    colors = settings.colors
    gray = stretched_gray(image, factor)
    classes = shrink_classes(mask, axon_value, factor)
    rgb = overlay(gray, classes, (colors.neurons, colors.axons), settings.tint_alpha)
    if grid_angle_deg is not None:
        for angle in (grid_angle_deg, grid_angle_deg + 90.0):
            rows, cols, cover = axis_lines(angle, rgb.shape[:2], settings.lattice_lines)
            blend(rgb, rows, cols, 0.6 * cover.astype(np.float32), colors.lattice)
    if grid_map is not None:
        share = block_reduce(padded(grid_map, factor).astype(np.float32), (factor,) * 2, np.mean)
        covered = share >= 0.5
        edge = find_boundaries(covered, mode="inner")
        rows, cols = np.nonzero(edge)
        blend(rgb, rows, cols, np.ones(rows.size, np.float32), colors.grid_map)
    return rgb
