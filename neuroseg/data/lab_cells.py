"""Neurons of the lab style: round cells with dark rims and bright halos, mostly in clusters.

Cells are placed in world coordinates (image px, reaching `margin` beyond the field), so a small
field shows the cells a large one would at the same place; only the field is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroseg.data.lab_settings import LabStyle
from neuroseg.data.lab_surface import count_in


@dataclass(frozen=True)
class RoundCell:
    """A cell body: centre (row, col) px, radius px, squash (minor / major axis) and rotation
    (rad) of its ellipse, and the cluster it belongs to (-1: isolated)."""

    row: float
    col: float
    radius: float
    squash: float
    theta: float
    cluster: int


@dataclass(frozen=True)
class World:
    """The part of the world that is drawn: rows r0..r1, cols c0..c1 (px, image coordinates;
    the field is [0, H) x [0, W)), and its area in mm^2."""

    r0: float
    c0: float
    r1: float
    c1: float
    area_mm2: float

    def uniform(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 2) points (row, col) uniform over the world."""
        return rng.uniform((self.r0, self.c0), (self.r1, self.c1), size=(n, 2))


def world_of(shape: tuple[int, int], style: LabStyle) -> World:
    """The field plus style.margin_um on every side."""
    margin = style.px(style.margin_um)
    r0, c0, r1, c1 = -margin, -margin, shape[0] + margin, shape[1] + margin
    return World(r0, c0, r1, c1, (r1 - r0) * (c1 - c0) * style.mm2_per_px)


def new_cell(
    rng: np.random.Generator, centre: np.ndarray, style: LabStyle, cluster: int
) -> RoundCell:
    """A cell of a diameter drawn from cells.diameter_um, nearly round."""
    radius = style.px(rng.uniform(*style.cells.diameter_um)) / 2
    squash = rng.uniform(*style.cells.squash)
    return RoundCell(
        float(centre[0]), float(centre[1]), radius, squash, rng.uniform(0, np.pi), cluster
    )


def crowded(cells: list[RoundCell], cell: RoundCell, factor: float) -> bool:
    """True when `cell` comes closer than factor x (sum of radii) to any of `cells`."""
    return any(
        np.hypot(cell.row - c.row, cell.col - c.col) < factor * (cell.radius + c.radius)
        for c in cells
    )


def grow_cluster(
    rng: np.random.Generator, centre: np.ndarray, size: int, style: LabStyle, cluster: int
) -> list[RoundCell]:
    """`size` cells packed around `centre`: each new one touches a member already there."""
    members = [new_cell(rng, centre, style, cluster)]
    for _ in range(30 * size):
        if len(members) >= size:
            break
        anchor = members[rng.integers(len(members))]
        cell = new_cell(rng, np.zeros(2), style, cluster)
        angle = rng.uniform(0, 2 * np.pi)
        distance = (anchor.radius + cell.radius) * rng.uniform(0.85, 1.0)
        row = anchor.row + distance * np.sin(angle)
        col = anchor.col + distance * np.cos(angle)
        cell = RoundCell(row, col, cell.radius, cell.squash, cell.theta, cluster)
        if not crowded([m for m in members if m is not anchor], cell, 0.8):
            members.append(cell)
    return members


def place_neurons(rng: np.random.Generator, world: World, style: LabStyle) -> list[RoundCell]:
    """Clusters of cells.cluster_cells cells, then isolated cells kept clear of every other."""
    look = style.cells
    cells: list[RoundCell] = []
    n_clusters = count_in(rng, look.clusters_per_mm2, world.area_mm2)
    for index, centre in enumerate(world.uniform(rng, n_clusters)):
        size = int(rng.integers(look.cluster_cells[0], look.cluster_cells[1] + 1))
        cells += grow_cluster(rng, centre, size, style, index)
    for centre in world.uniform(rng, count_in(rng, look.isolated_per_mm2, world.area_mm2)):
        cell = new_cell(rng, centre, style, -1)
        if not crowded(cells, cell, look.isolated_gap):
            cells.append(cell)
    return cells


def cell_frame(
    cell: RoundCell, shape: tuple[int, int], reach: float
) -> tuple[slice, slice, np.ndarray] | None:
    """(row slice, col slice, signed distance to the outline px (H', W')) around a cell in the
    field, or None when it lies outside; negative inside."""
    r0, r1 = (
        max(int(cell.row - cell.radius - reach), 0),
        min(int(cell.row + cell.radius + reach) + 1, shape[0]),
    )
    c0, c1 = (
        max(int(cell.col - cell.radius - reach), 0),
        min(int(cell.col + cell.radius + reach) + 1, shape[1]),
    )
    if r0 >= r1 or c0 >= c1:
        return None
    dr = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - cell.row
    dc = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - cell.col
    along = dc * np.cos(cell.theta) + dr * np.sin(cell.theta)
    across = (-dc * np.sin(cell.theta) + dr * np.cos(cell.theta)) / cell.squash
    distance = np.sqrt(along * along + across * across) - cell.radius
    return slice(r0, r1), slice(c0, c1), distance


def draw_neurons(
    rng: np.random.Generator, cells: list[RoundCell], shape: tuple[int, int], style: LabStyle
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gray layer float32, occlusion float32 in [0, 1], neuron mask bool, clustered bool).

    The layer holds each cell's bright inside, dark rim and bright halo (gray levels, added);
    occlusion is 1 over cell bodies, where pillars and clutter are hidden. Truth is the outline.
    """
    look = style.cells
    halo_px = style.px(look.halo_um)
    layer = np.zeros(shape, np.float32)
    occlusion = np.zeros(shape, np.float32)
    neurons = np.zeros(shape, bool)
    clustered = np.zeros(shape, bool)
    for cell in cells:
        body, rim, halo = (
            rng.uniform(*span) for span in (look.body_gray, look.rim_gray, look.halo_gray)
        )
        frame = cell_frame(cell, shape, 2 * halo_px + 4)
        if frame is None:
            continue
        rows, cols, d = frame
        inside = d <= 0
        shade = body * np.clip(-d / 3.0, 0, 1)
        shade -= rim * np.exp(-((d + 0.5) ** 2) / 2.0)
        shade += halo * np.exp(-((d - 1.5 - halo_px / 2) ** 2) / (2 * (halo_px / 2) ** 2))
        layer[rows, cols] += shade
        occlusion[rows, cols] = np.maximum(occlusion[rows, cols], 1 / (1 + np.exp(2 * d)))
        neurons[rows, cols] |= inside
        if cell.cluster >= 0:
            clustered[rows, cols] |= inside
    return layer, occlusion, neurons, clustered
