"""Axon centre lines of the lab style: free axons crossing in meshes, axons leaving cells,
parallel fascicles, and axons pulled straight between clusters; steered by the lattice.

A growing axon keeps its heading over about axons.persistence_um on a flat surface (a random walk
of its heading). Where pillars are, its heading is also pulled towards the nearest lattice axis,
so that its angle to the axis settles to a von Mises law of 4x the angle whose mean cos is the
condition's planted alignment (axons.alignment): for heading noise s (rad / sqrt(px)) and pull
-(k / 4) sin(4 (heading - axis)) per px, the settled law is exp(k / (8 s^2) cos 4x). Bridges
between clusters are straight whatever lies below them. Points are (row, col) px, 1 px apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, special

from neuroseg.data.lab_cells import RoundCell, World
from neuroseg.data.lab_settings import AxonLook, LabStyle
from neuroseg.data.lab_surface import Coverage, count_in


@dataclass(frozen=True)
class DrawnAxon:
    """One axon: centre line (N, 2) float64 (row, col) px, width px (FWHM), signed contrast
    (gray levels, < 0 dark), kind (mesh, cell, fascicle, bridge; "fibre" for the wisps of
    clutter drawn the same way, never truth) and painting unit (axons of one fascicle or bridge
    share it)."""

    points: np.ndarray
    width_px: float
    contrast: float
    kind: str
    unit: int


@dataclass(frozen=True)
class Steering:
    """How the lattice steers growth: axis (deg, None without lattice), von Mises concentration
    of 4x the angle to it, heading noise (rad / sqrt(px)), and where the pillars are."""

    axis_deg: float | None
    kappa: float
    noise: float
    coverage: Coverage

    @property
    def pull(self) -> float:
        """k of the pull -(k / 4) sin(4 (heading - axis)) per px that settles to `kappa`."""
        return 0.0 if self.axis_deg is None else 8 * self.noise**2 * self.kappa


def concentration(alignment: float) -> float:
    """The von Mises kappa whose mean cos is `alignment` in [0, 1): I1(k) / I0(k) = alignment."""
    if alignment <= 0:
        return 0.0
    if alignment >= 0.999:
        raise ValueError(f"lab.axons.alignment {alignment}: must be below 0.999")

    def gap(kappa: float) -> float:
        return special.i1e(kappa) / special.i0e(kappa) - alignment

    return float(optimize.brentq(gap, 1e-9, 1e4))


def steering_for(
    condition: str, axis_deg: float | None, coverage: Coverage, style: LabStyle
) -> Steering:
    """The condition's planted steering (none without a lattice)."""
    look = style.axons
    noise = float(np.sqrt(2.0 / style.px(look.persistence_um)))  # heading correlation e^(-L/Lp)
    kappa = concentration(look.alignment.get(condition, 0.0)) if axis_deg is not None else 0.0
    return Steering(axis_deg, kappa, noise, coverage)


def start_headings(rng: np.random.Generator, starts: np.ndarray, steering: Steering) -> np.ndarray:
    """(N,) rad: settled headings where pillars are (the stationary law), uniform elsewhere."""
    free = rng.uniform(0, 2 * np.pi, size=len(starts))
    if steering.axis_deg is None or steering.kappa == 0:
        return free
    settled = rng.vonmises(0.0, steering.kappa, size=len(starts)) / 4
    settled += np.radians(steering.axis_deg) + np.pi / 2 * rng.integers(4, size=len(starts))
    return np.where(steering.coverage.covers(starts[:, 0], starts[:, 1]), settled, free)


def grow(
    rng: np.random.Generator, starts: np.ndarray, headings: np.ndarray, lengths: np.ndarray,
    steering: Steering,
) -> list[np.ndarray]:  # fmt: skip
    """Centre lines (n_i + 1, 2) of axons growing 1 px a step from `starts` (N, 2), all at once."""
    steps = int(np.ceil(lengths.max(initial=0)))
    track = np.empty((steps + 1, len(starts), 2))
    position, heading = starts.astype(np.float64).copy(), headings.astype(np.float64).copy()
    track[0] = position
    axis = np.radians(steering.axis_deg or 0.0)
    for step in range(steps):
        position = position + np.stack([-np.sin(heading), np.cos(heading)], axis=1)
        track[step + 1] = position
        pull = steering.pull * steering.coverage.covers(position[:, 0], position[:, 1])
        heading = heading - pull / 4 * np.sin(4 * (heading - axis))
        heading = heading + steering.noise * rng.standard_normal(len(starts))
    counts = np.ceil(lengths).astype(np.int64) + 1
    return [track[: counts[i], i].copy() for i in range(len(starts))]


def grow_both_ways(
    rng: np.random.Generator, seeds: np.ndarray, lengths: np.ndarray, steering: Steering
) -> list[np.ndarray]:
    """Centre lines through `seeds` (N, 2), half their length on each side."""
    headings = start_headings(rng, seeds, steering)
    halves = grow(
        rng, np.concatenate([seeds, seeds]), np.concatenate([headings, headings + np.pi]),
        np.concatenate([lengths, lengths]) / 2, steering,
    )  # fmt: skip
    n = len(seeds)
    return [np.concatenate([halves[n + i][::-1], halves[i][1:]]) for i in range(n)]


def draw_lengths(rng: np.random.Generator, look: AxonLook, n: int, style: LabStyle) -> np.ndarray:
    """(n,) px, log-uniform over axons.length_um."""
    low, high = np.log(look.length_um[0]), np.log(look.length_um[1])
    return np.array([style.px(um) for um in np.exp(rng.uniform(low, high, size=n))])


def appearance(rng: np.random.Generator, look: AxonLook, style: LabStyle) -> tuple[float, float]:
    """(width px, signed contrast gray levels) of one axon."""
    width = style.px(rng.uniform(*look.width_um))
    contrast = float(rng.uniform(*look.contrast_gray))
    return width, contrast if rng.uniform() < look.bright_share else -contrast


def free_axons(
    rng: np.random.Generator, world: World, cells: list[RoundCell], steering: Steering,
    style: LabStyle,
) -> list[DrawnAxon]:  # fmt: skip
    """Mesh axons through random points of the world, and axons leaving each cell's edge."""
    look = style.axons
    seeds = world.uniform(rng, count_in(rng, look.mesh_per_mm2, world.area_mm2))
    lines = grow_both_ways(rng, seeds, draw_lengths(rng, look, len(seeds), style), steering)
    kinds = ["mesh"] * len(lines)
    per_cell = rng.integers(look.per_cell[0], look.per_cell[1] + 1, size=len(cells))
    owners = [cell for cell, n in zip(cells, per_cell, strict=True) for _ in range(n)]
    if owners:
        centres = np.array([[c.row, c.col] for c in owners])
        headings = start_headings(rng, centres, steering)
        radii = np.array([c.radius for c in owners])[:, None]
        starts = centres + radii * np.stack([-np.sin(headings), np.cos(headings)], axis=1)
        lengths = draw_lengths(rng, look, len(owners), style)
        lines += grow(rng, starts, headings, lengths, steering)
        kinds += ["cell"] * len(owners)
    axons = []
    for line, kind in zip(lines, kinds, strict=True):
        axons.append(DrawnAxon(line, *appearance(rng, look, style), kind, len(axons)))
    return axons


def normals(line: np.ndarray) -> np.ndarray:
    """(N, 2) unit normals (row, col) of a centre line, from its smoothed tangent."""
    tangent = np.gradient(line, axis=0) if len(line) > 1 else np.array([[0.0, 1.0]])
    tangent = ndimage.uniform_filter1d(tangent, 9, axis=0, mode="nearest")
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    return np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)


def wiggle(rng: np.random.Generator, n: int, scale_px: float) -> np.ndarray:
    """(n,) smooth noise of std about 1 varying over scale_px samples."""
    kernel = np.exp(-0.5 * (np.arange(-3 * scale_px, 3 * scale_px + 1) / scale_px) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))  # unit gain on white noise, whatever n is
    return np.convolve(rng.standard_normal(n + kernel.size), kernel, mode="same")[:n]


def fascicles(
    rng: np.random.Generator, world: World, steering: Steering, style: LabStyle, first_unit: int
) -> list[DrawnAxon]:
    """Bundles of parallel axons along a leader's path, a few px apart, fanning out at the ends."""
    look = style.axons
    n = count_in(rng, look.fascicles_per_mm2, world.area_mm2)
    seeds = world.uniform(rng, n)
    leaders = grow_both_ways(rng, seeds, draw_lengths(rng, look, n, style), steering)
    axons = []
    for index, leader in enumerate(leaders):
        members = int(rng.integers(look.fascicle_axons[0], look.fascicle_axons[1] + 1))
        spacing = style.px(rng.uniform(*look.fascicle_spacing_um))
        side = normals(leader)
        t = np.linspace(-1, 1, len(leader))
        ramp = np.clip((np.abs(t) - 0.7) / 0.3, 0, 1)  # members fan out over the last 15 %
        for j in range(members):
            place = (j - (members - 1) / 2) * spacing
            offset = place * (1 + rng.uniform(0, look.fan_out) * ramp) + 0.3 * spacing * wiggle(
                rng, len(t), 40
            )
            line = leader + side * offset[:, None]
            trim = rng.uniform(0, 0.15, size=2) * len(line)
            line = line[int(trim[0]) : len(line) - int(trim[1])]
            width, contrast = appearance(rng, look, style)
            axons.append(DrawnAxon(line, width, contrast, "fascicle", first_unit + index))
    return axons


def bridges(
    rng: np.random.Generator, cells: list[RoundCell], style: LabStyle, first_unit: int
) -> list[DrawnAxon]:
    """Straight axons (a slight bow) between pairs of clusters closer than axons.bridge_max_um."""
    look = style.axons
    clusters = sorted({c.cluster for c in cells if c.cluster >= 0})
    centres = {
        k: np.mean([[c.row, c.col] for c in cells if c.cluster == k], axis=0) for k in clusters
    }
    spans = {
        k: max(
            np.hypot(c.row - centres[k][0], c.col - centres[k][1]) for c in cells if c.cluster == k
        )
        for k in clusters
    }
    axons, unit = [], first_unit
    for i, a in enumerate(clusters):
        for b in clusters[i + 1 :]:
            length = float(np.hypot(*(centres[a] - centres[b])))
            if length > style.px(look.bridge_max_um) or rng.uniform() >= look.bridge_share:
                continue
            for _ in range(int(rng.integers(look.bridge_axons[0], look.bridge_axons[1] + 1))):
                ends = [centres[k] + rng.normal(0, 0.3, 2) * (spans[k] + 5) for k in (a, b)]
                span = float(np.hypot(*(ends[1] - ends[0])))
                t = np.linspace(0, 1, max(int(span), 2))[:, None]
                line = ends[0] + t * (ends[1] - ends[0])
                line = line + normals(line) * (
                    rng.normal(0, look.bridge_bow) * span * 4 * t * (1 - t)
                )
                axons.append(DrawnAxon(line, *appearance(rng, look, style), "bridge", unit))
            unit += 1
    return axons


def fibres(rng: np.random.Generator, world: World, style: LabStyle) -> list[DrawnAxon]:
    """Short curled wisps of debris (kind "fibre"): drawn like axons, never part of the truth."""
    look = style.clutter
    seeds = world.uniform(rng, count_in(rng, look.fibres_per_mm2, world.area_mm2))
    low, high = (style.px(um) for um in look.fibre_length_um)
    lengths = rng.uniform(low, high, size=len(seeds))
    curl = Steering(None, 0.0, float(np.sqrt(2.0 / max(low, 1.0))), Coverage(None, 0.0, 0.0))
    lines = grow_both_ways(rng, seeds, lengths, curl)
    wisps = []
    for line in lines:
        width = style.px(rng.uniform(*look.fibre_width_um))
        contrast = rng.uniform(*look.fibre_gray) * (1 if rng.uniform() < 0.5 else -1)
        wisps.append(DrawnAxon(line, width, contrast, "fibre", -1))
    return wisps


def draw_axon_lines(
    rng: np.random.Generator, world: World, cells: list[RoundCell], steering: Steering,
    style: LabStyle,
) -> list[DrawnAxon]:  # fmt: skip
    """Every axon of the world: free and cell-born, fascicles, bridges (units numbered apart)."""
    axons = free_axons(rng, world, cells, steering, style)
    axons += fascicles(rng, world, steering, style, len(axons))
    axons += bridges(rng, cells, style, max((a.unit for a in axons), default=-1) + 1)
    return axons
