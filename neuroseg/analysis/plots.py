"""Length-weighted histograms and rose plots of axon directions relative to the grid (PNG, Agg)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from neuroseg.analysis.orientation import fold_relative_deg  # noqa: E402
from neuroseg.io import atomic_path  # noqa: E402

# Per group: (offset of each skeleton pixel's direction from the reference, deg; its length, px).
Directions = tuple[np.ndarray, np.ndarray]


def rose(
    ax: plt.Axes, offsets_deg: np.ndarray, weights_px: np.ndarray, bins: int, title: str
) -> None:
    """Axial rose on a polar axis: each direction drawn at a and a + 180, bar area ~ length."""
    angles = np.concatenate([offsets_deg % 180.0, offsets_deg % 180.0 + 180.0])
    weights = np.concatenate([weights_px, weights_px])
    counts, edges = np.histogram(angles, bins=bins, range=(0.0, 360.0), weights=weights)
    share = counts / counts.sum() if counts.sum() > 0 else counts
    # Radius ~ sqrt(share) so that wedge area, not radius, is proportional to length.
    ax.bar(np.radians(edges[:-1]), np.sqrt(share), width=np.radians(360.0 / bins), align="edge")
    ax.set_thetagrids([0, 45, 90, 135, 180, 225, 270, 315])
    ax.set_yticklabels([])
    ax.set_title(title, fontsize=9, pad=14)


def histogram(
    ax: plt.Axes, folded_deg: np.ndarray, weights_px: np.ndarray, bins: int, title: str
) -> None:
    """Share of axon length per folded angle bin on [0, 45]; the dashed line is 'no preference'."""
    counts, edges = np.histogram(folded_deg, bins=bins, range=(0.0, 45.0), weights=weights_px)
    share = counts / counts.sum() if counts.sum() > 0 else counts
    ax.bar(edges[:-1], share, width=45.0 / bins, align="edge", edgecolor="white")
    ax.axhline(1.0 / bins, color="k", linestyle="--", linewidth=1)
    ax.set_xlim(0, 45)
    ax.set_xlabel("angle to nearest grid axis (deg)")
    ax.set_ylabel("share of axon length")
    ax.set_title(title, fontsize=9)


def save(figure: Figure, path: Path, dpi: int) -> None:
    """Write a figure as PNG atomically and free it."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    plt.close(figure)


def group_figures(
    output: Path, group: str, offsets_deg: np.ndarray, weights_px: np.ndarray, bins: int, dpi: int
) -> list[Path]:
    """hist_<group>.png and rose_<group>.png in `output`; returns their paths."""
    folded = fold_relative_deg(offsets_deg, 0.0)  # offsets are already from the grid axis
    title = f"{group}: {weights_px.sum():.0f} px of axon"
    figure, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    histogram(ax, folded, weights_px, bins, title)
    safe = re.sub(r"[^\w.-]", "_", group)  # group names come from folders or manifest cells
    hist_path = output / f"hist_{safe}.png"
    save(figure, hist_path, dpi)
    figure, ax = plt.subplots(figsize=(3.2, 3.2), subplot_kw={"projection": "polar"})
    rose(ax, offsets_deg, weights_px, 4 * bins, title)
    rose_path = output / f"rose_{safe}.png"
    save(figure, rose_path, dpi)
    return [hist_path, rose_path]


def rose_panel(
    directions: Mapping[str, Directions], bins: int, titles: Mapping[str, str] | None = None
) -> Figure:
    """One rose per group side by side; 0 deg = grid axis (image x axis without grid)."""
    figure, axes = plt.subplots(
        1,
        len(directions),
        figsize=(2.4 * len(directions), 2.8),
        subplot_kw={"projection": "polar"},
        squeeze=False,
        layout="constrained",
    )
    for ax, (group, (offsets, weights)) in zip(axes[0], sorted(directions.items()), strict=True):
        rose(ax, offsets, weights, 4 * bins, (titles or {}).get(group, group))
    figure.suptitle(
        "Axon directions relative to the pillar grid (0° = grid axis; area ~ axon length)",
        fontsize=10,
    )
    return figure
