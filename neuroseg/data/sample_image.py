"""Lab-like brightfield images of neurons on nanopillar plates with known truth (demo, tests).

One image at a time, in memory; `neuroseg.data.sample_tree` writes them out as the lab's raw tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from neuroseg.errors import ChoiceError, UsageError
from neuroseg.task import AXON, NEURON

CONDITIONS = ("200_2", "200_4", "400_2", "400_4", "empty")
FULL_HW = (1536, 2048)  # the lab's image size; feature sizes and counts are set for it


@dataclass(frozen=True)
class SynthImage:
    """One synthetic image and its truth.

    image: (H, W) uint8 or uint16 gray; classes: (H, W) uint8 0 background, 1 neuron, 2 axon
    (neuron wins); clustered: (H, W) bool, neuron pixels of multi-cell clusters (painted magenta);
    grid_angle_deg: lattice axis counter-clockwise from the image x axis as displayed, [0, 90),
    None without grid; axon_mode: "aligned" (along lattice axes) or "random".
    """

    image: np.ndarray
    classes: np.ndarray
    clustered: np.ndarray
    grid_angle_deg: float | None
    grid_spacing_px: float | None
    axon_mode: str


@dataclass(frozen=True)
class Cell:
    """An elliptic cell body: centre (row, col) in px, semi-axes (a, b) in px, rotation in rad."""

    row: float
    col: float
    a: float
    b: float
    theta: float
    cluster: bool


def condition_geometry(condition: str) -> tuple[float, float | None]:
    """(pillar height nm, grid spacing um) of a condition like "400_2"; empty has no grid."""
    if condition not in CONDITIONS:
        raise ChoiceError(f"unknown condition {condition!r}; choose one of {list(CONDITIONS)}")
    if condition == "empty":
        return 0.0, None
    height_nm, spacing_um = condition.split("_")
    return float(height_nm), float(spacing_um)


def pillar_distance(
    shape: tuple[int, int], angle_deg: float, spacing_px: float, phase: np.ndarray
) -> np.ndarray:
    """(H, W) float32: each pixel's distance to the nearest pillar of a square lattice with axis
    `angle_deg` and period `spacing_px`, in periods; phase (2,) shifts it, in periods."""
    theta = np.deg2rad(angle_deg)
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    cols = np.arange(shape[1], dtype=np.float32)[None, :]
    # Lattice coordinates in units of spacing; rows grow downwards, so "up" is -row.
    u = (cols * np.cos(theta) - rows * np.sin(theta)) / spacing_px + phase[0]
    v = (-cols * np.sin(theta) - rows * np.cos(theta)) / spacing_px + phase[1]
    u -= np.round(u)
    v -= np.round(v)
    return np.sqrt(u * u + v * v)


def lattice(
    shape: tuple[int, int], angle_deg: float, spacing_px: float, phase: np.ndarray
) -> np.ndarray:
    """(H, W) float32 in about [-0.5, 1]: bright pillar dots, dark rims, on a tilted square grid."""
    dist = pillar_distance(shape, angle_deg, spacing_px, phase)
    return np.exp(-((dist / 0.14) ** 2) / 2) - 0.5 * np.exp(-(((dist - 0.28) / 0.06) ** 2) / 2)


def illumination(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 around 1: a tilted plane plus an off-centre vignette, as uneven lamp light."""
    rows = np.linspace(-0.5, 0.5, shape[0], dtype=np.float32)[:, None]
    cols = np.linspace(-0.5, 0.5, shape[1], dtype=np.float32)[None, :]
    tilt_r, tilt_c = rng.uniform(-0.25, 0.25, size=2)
    centre_r, centre_c = rng.uniform(-0.3, 0.3, size=2)
    vignette = (rows - centre_r) ** 2 + (cols - centre_c) ** 2
    return (1.0 + tilt_r * rows + tilt_c * cols - rng.uniform(0.2, 0.5) * vignette).astype(
        np.float32
    )


def place_cells(
    rng: np.random.Generator, shape: tuple[int, int], radius_px: float, clusters: int, isolated: int
) -> list[Cell]:
    """Clusters of 3-7 touching cells, then isolated cells kept clear of all others."""
    low, high = 2 * radius_px, np.array(shape) - 2 * radius_px
    cells: list[Cell] = []

    def new_cell(centre: np.ndarray, cluster: bool) -> Cell:
        a = radius_px * rng.uniform(0.8, 1.25)
        return Cell(*centre, a, a * rng.uniform(0.65, 1.0), rng.uniform(0, np.pi), cluster)

    for _ in range(clusters):
        members = [new_cell(rng.uniform(low, high), True)]
        for _ in range(rng.integers(2, 7)):
            anchor = members[rng.integers(len(members))]
            angle = rng.uniform(0, 2 * np.pi)
            # 1.6 radii apart, less than two: neighbours touch or overlap.
            offset = 1.6 * radius_px * np.array([np.sin(angle), np.cos(angle)])
            members.append(new_cell(np.array([anchor.row, anchor.col]) + offset, True))
        cells += members
    for _ in range(isolated):
        for _ in range(50):  # rejection sampling: a crowded small image may hold fewer
            centre = rng.uniform(low / 2, high + low / 2)
            gaps = [np.hypot(*(centre - (c.row, c.col))) - 1.25 * (c.a + radius_px) for c in cells]
            if min(gaps, default=1.0) > 0:
                cells.append(new_cell(centre, False))
                break
    return cells


def rasterize_cells(
    cells: list[Cell], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask bool, clustered bool, body float32 in [0, 1]) maps; the body edge is soft (2 px)."""
    mask = np.zeros(shape, bool)
    clustered = np.zeros(shape, bool)
    body = np.zeros(shape, np.float32)
    for cell in cells:
        r0, r1 = int(max(cell.row - cell.a - 4, 0)), int(min(cell.row + cell.a + 5, shape[0]))
        c0, c1 = int(max(cell.col - cell.a - 4, 0)), int(min(cell.col + cell.a + 5, shape[1]))
        if r0 >= r1 or c0 >= c1:
            continue
        dr = np.arange(r0, r1, dtype=np.float32)[:, None] - cell.row
        dc = np.arange(c0, c1, dtype=np.float32)[None, :] - cell.col
        along = dc * np.cos(cell.theta) + dr * np.sin(cell.theta)
        across = -dc * np.sin(cell.theta) + dr * np.cos(cell.theta)
        radial = np.sqrt((along / cell.a) ** 2 + (across / cell.b) ** 2)
        inside = radial <= 1.0
        edge_px = (1.0 - radial) * cell.b  # signed distance to the outline, roughly, in px
        soft = 1.0 / (1.0 + np.exp(-edge_px))
        mask[r0:r1, c0:c1] |= inside
        clustered[r0:r1, c0:c1] |= inside & cell.cluster
        body[r0:r1, c0:c1] = np.maximum(body[r0:r1, c0:c1], soft)
    return mask, clustered, body


def trace_axons(
    rng: np.random.Generator,
    cells: list[Cell],
    axis_deg: float | None,
    length_px: tuple[float, float],
) -> list[np.ndarray]:
    """Centre lines (N, 2) float (row, col), 0.5 px apart, leaving cells along the lattice axes.

    With a lattice they follow one of its four axis directions with a few degrees of jitter and
    a gentle wander; without (`axis_deg` None) direction and wander are free.
    """
    lines = []
    for cell in cells:
        for _ in range(rng.integers(1, 3)):
            if axis_deg is None:
                heading, wander_deg = rng.uniform(0, 360), 25.0
            else:
                heading, wander_deg = axis_deg + 90 * rng.integers(4) + rng.normal(0, 3), 4.0
            steps = int(2 * rng.uniform(*length_px))
            noise = ndimage.gaussian_filter1d(rng.normal(size=steps), sigma=max(steps / 8, 1))
            # Zero-mean wander: the axon as a whole keeps its heading, only bends along the way.
            noise = (noise - noise.mean()) / max(noise.std(), 1e-6)
            angle = np.deg2rad(heading + wander_deg * noise)
            start = np.array([cell.row, cell.col]) + cell.a * np.array(
                [-np.sin(angle[0]), np.cos(angle[0])]
            )
            # Counter-clockwise on screen means rows decrease as the angle grows.
            step = 0.5 * np.stack([-np.sin(angle), np.cos(angle)], axis=1)
            lines.append(start + np.cumsum(step, axis=0))
    return lines


def rasterize_axons(
    rng: np.random.Generator, lines: list[np.ndarray], shape: tuple[int, int]
) -> np.ndarray:
    """(H, W) bool: each centre line thickened to a width of 2-4 px (pixels within width/2)."""
    mask = np.zeros(shape, bool)
    if not lines:
        return mask
    points = np.concatenate(lines)
    half_width = np.concatenate([np.full(len(x), rng.integers(2, 5) / 2) for x in lines])
    offsets = np.stack(np.meshgrid(np.arange(-2, 3), np.arange(-2, 3)), -1).reshape(-1, 2)
    pixels = np.floor(points)[:, None, :] + offsets[None, :, :] + 0.5  # candidate pixel centres
    near = np.linalg.norm(pixels - points[:, None, :], axis=-1) <= half_width[:, None]
    rc = np.floor(pixels[near]).astype(np.int64)
    keep = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    mask[rc[keep, 0], rc[keep, 1]] = True
    return mask


def make_image(
    rng: np.random.Generator,
    height: int = 1536,
    width: int = 2048,
    condition: str = "200_2",
    bit_depth: int = 8,
    pixel_size_um: float = 0.2,
    cell_radius_um: float = 6.0,
    noise_std: float = 0.02,
) -> SynthImage:
    """A lab-like image: uneven light, pillar lattice, bright cell bodies, dark axons, noise."""
    if height < 32 or width < 32:
        raise UsageError(f"image size {height}x{width}: both sides must be at least 32 px")
    if bit_depth not in (8, 16):
        raise UsageError(f"bit_depth {bit_depth}: choose 8 or 16")
    shape = (height, width)
    pillar_nm, spacing_um = condition_geometry(condition)
    # Sizes follow the microscope (px per um) but shrink on small images so they still hold cells.
    scale = float(np.clip(min(height / FULL_HW[0], width / FULL_HW[1]), 0.35, 1.0))
    area = height * width / (FULL_HW[0] * FULL_HW[1])
    cells = place_cells(
        rng,
        shape,
        radius_px=cell_radius_um / pixel_size_um * scale,
        clusters=max(1, rng.poisson(4 * area)),
        isolated=max(1, rng.poisson(10 * area)),
    )
    neurons, clustered, body = rasterize_cells(cells, shape)
    angle_deg = spacing_px = None
    if spacing_um is not None:
        angle_deg = round(float(rng.uniform(0, 90)), 3)
        spacing_px = round(spacing_um / pixel_size_um, 6)
    diagonal = float(np.hypot(height, width))
    lines = trace_axons(rng, cells, angle_deg, (0.08 * diagonal, 0.3 * diagonal))
    axons = rasterize_axons(rng, lines, shape)

    gray = np.full(shape, 0.45, np.float32)
    if spacing_px is not None:
        contrast = 0.07 * pillar_nm / 200.0  # taller pillars scatter more light
        gray += contrast * lattice(shape, angle_deg, spacing_px, rng.uniform(0, 1, size=2))
    gray -= 0.18 * axons
    gray = gray * (1 - body) + (0.72 + 0.05 * body) * body  # cells hide the pillars beneath them
    gray = ndimage.gaussian_filter(gray, sigma=0.7)  # optics blur strokes a little
    gray *= illumination(shape, rng)
    gray += rng.standard_normal(shape, dtype=np.float32) * noise_std
    top = 255 if bit_depth == 8 else 65535
    image = np.round(np.clip(gray, 0, 1) * top).astype(np.uint8 if bit_depth == 8 else np.uint16)

    classes = np.zeros(shape, np.uint8)
    classes[axons] = AXON
    classes[neurons] = NEURON  # painters draw cells over the axons that leave them
    axon_mode = "random" if angle_deg is None else "aligned"
    return SynthImage(image, classes, clustered, angle_deg, spacing_px, axon_mode)
