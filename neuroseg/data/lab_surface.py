"""The field under the cells in the lab style: pillar lattice (whole or partial), uneven light,
clutter (haze, membranes, debris, specks, grain). Every layer is (H, W) float32 in gray levels
(8-bit scale) around 0, except `uneven_light`, a relative gain around 1.

Coordinates are (row, col) px with rows pointing down; angles are degrees counter-clockwise from
the image x axis as displayed (a direction a is the step (-sin a, cos a)), as in analysis/grid.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from neuroseg.data.lab_settings import ClutterLook, LabStyle, LatticeLook, LightLook
from neuroseg.data.sample_image import pillar_distance


@dataclass(frozen=True)
class Coverage:
    """Where the pillars are: the half plane x cos(a) + y sin(a) <= offset (x = col, y = row);
    with normal_deg None everywhere (share 1) or nowhere (share 0, a flat plate). share is the
    covered fraction of the field's pixels."""

    normal_deg: float | None
    offset_px: float
    share: float

    def covers(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """bool per point: on the lattice side (any position, also beyond the field)."""
        if self.normal_deg is None:
            return np.full(np.broadcast(rows, cols).shape, self.share > 0)
        normal = np.radians(self.normal_deg)
        return cols * np.cos(normal) + rows * np.sin(normal) <= self.offset_px

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) bool: the covered pixels (pixel centres)."""
        rows = np.arange(shape[0], dtype=np.float64)[:, None] + 0.5
        cols = np.arange(shape[1], dtype=np.float64)[None, :] + 0.5
        return self.covers(rows, cols)


def draw_coverage(rng: np.random.Generator, shape: tuple[int, int], look: LatticeLook) -> Coverage:
    """Whole coverage, or (with probability partial_share) a straight boundary at a random angle
    placed so that a share drawn from covered_share of the pixels lies on the lattice side."""
    if rng.uniform() >= look.partial_share:
        return Coverage(None, 0.0, 1.0)
    normal_deg = float(rng.uniform(0, 360))
    share = float(rng.uniform(*look.covered_share))
    normal = np.radians(normal_deg)
    rows = np.arange(shape[0]) + 0.5
    cols = np.arange(shape[1]) + 0.5
    projection = (cols[None, :] * np.cos(normal) + rows[:, None] * np.sin(normal)).ravel()
    offset = float(np.quantile(projection, share))
    covered = float(np.mean(projection <= offset))
    return Coverage(normal_deg, offset, covered)


def pillar_lattice(
    shape: tuple[int, int], angle_deg: float, spacing_px: float, diameter_px: float,
    phase: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(H, W) float32 in [-1, 0]: a dark round dot (diameter_px across, edges soft over about
    a px) at every pillar of a square lattice with axis `angle_deg` and period `spacing_px`;
    phase (2,) in lattice units."""
    distance_px = pillar_distance(shape, angle_deg, spacing_px, phase) * spacing_px
    return -soft_disk(distance_px, diameter_px / 2)


def soft_disk(distance_px: np.ndarray, radius_px: float) -> np.ndarray:
    """Values in [0, 1]: 1 well inside `radius_px`, 0 well outside, a logistic edge of ~1 px."""
    return (1.0 / (1.0 + np.exp((distance_px - radius_px) / 0.35))).astype(np.float32)


def uneven_light(rng: np.random.Generator, shape: tuple[int, int], style: LabStyle) -> np.ndarray:
    """(H, W) float32 gain around 1: a tilt, an off-centre vignette and broad patches."""
    look: LightLook = style.light
    scale = max(shape) / 2.0  # tilt and vignette span the field, whatever its size
    rows = (np.arange(shape[0], dtype=np.float32)[:, None] - shape[0] / 2) / scale
    cols = (np.arange(shape[1], dtype=np.float32)[None, :] - shape[1] / 2) / scale
    tilt_r, tilt_c = rng.uniform(-look.tilt, look.tilt, size=2) / 2
    centre_r, centre_c = rng.uniform(-0.4, 0.4, size=2)
    vignette = ((rows - centre_r) ** 2 + (cols - centre_c) ** 2) / 2
    gain = 1.0 + tilt_r * rows + tilt_c * cols - look.vignette * rng.uniform(0.5, 1) * vignette
    patches = smooth_noise(rng, shape, style.px(look.patch_um))
    return (gain + look.patches * patches).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], grain_px: float) -> np.ndarray:
    """(H, W) float32, std about 1 over a large field: white noise blurred with sigma grain_px,
    drawn at a coarse resolution and zoomed up, so broad grains cost little at full size."""
    step = max(1, int(grain_px // 3))
    coarse = (shape[0] // step + 3, shape[1] // step + 3)
    sigma = grain_px / step
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma, mode="wrap")
    # Scaled by the blur's known gain (white noise blurred in 2D has std 1 / (2 sqrt(pi) sigma)),
    # not by the sample's std: a field smaller than its grain stays a gentle, not a huge, swing.
    field *= 2 * np.sqrt(np.pi) * max(sigma, 0.3)
    zoomed = ndimage.zoom(field, step, order=1)[: shape[0], : shape[1]]
    return zoomed.astype(np.float32)


def haze_and_grain(rng: np.random.Generator, shape: tuple[int, int], style: LabStyle) -> np.ndarray:
    """(H, W) float32 gray levels: out-of-focus haze, mottled texture, fine surface grain."""
    look: ClutterLook = style.clutter
    haze = look.haze_gray * smooth_noise(rng, shape, style.px(look.haze_um))
    # Sheets of membrane: a smooth field pushed through tanh, so patches get edges, not mush.
    patches = np.tanh(2.0 * smooth_noise(rng, shape, style.px(look.texture_um)))
    haze += look.texture_gray * patches
    grain = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 0.8)
    grain *= look.grain_gray * 2 * np.sqrt(np.pi) * 0.8  # the blur's gain on white noise
    return haze + grain


def count_in(rng: np.random.Generator, per_mm2: list[float], area_mm2: float) -> int:
    """How many objects of a density drawn log-uniform from per_mm2 fall in area_mm2."""
    low, high = per_mm2
    density = float(np.exp(rng.uniform(np.log(max(low, 1e-9)), np.log(max(high, 1e-9)))))
    return int(rng.poisson(density * area_mm2))


def blobs(
    shape: tuple[int, int], centres: np.ndarray, radii: np.ndarray, amplitudes: np.ndarray
) -> np.ndarray:
    """(H, W) float32: soft round blobs (centre (row, col), radius px, signed peak); where
    blobs overlap the strongest dark and the strongest bright one win, so clumps stay flat."""
    out = np.zeros(shape, np.float32)
    for (row, col), radius, amplitude in zip(centres, radii, amplitudes, strict=True):
        reach = int(np.ceil(radius)) + 3
        r0, r1 = max(int(row) - reach, 0), min(int(row) + reach + 1, shape[0])
        c0, c1 = max(int(col) - reach, 0), min(int(col) + reach + 1, shape[1])
        if r0 >= r1 or c0 >= c1:
            continue
        dr = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5 - row
        dc = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5 - col
        patch = amplitude * soft_disk(np.sqrt(dr * dr + dc * dc), radius)
        combine = np.minimum if amplitude < 0 else np.maximum
        out[r0:r1, c0:c1] = combine(out[r0:r1, c0:c1], patch)
    return out


def debris_and_specks(
    rng: np.random.Generator, shape: tuple[int, int], style: LabStyle
) -> np.ndarray:
    """(H, W) float32 gray levels: irregular clumps of debris (a few overlapping blobs each,
    mostly dark) and small bright and dark specks."""
    look = style.clutter
    area = shape[0] * shape[1] * style.mm2_per_px
    n_debris = count_in(rng, look.debris_per_mm2, area)
    parts = rng.integers(3, 10, size=n_debris)
    centres = rng.uniform((0, 0), shape, size=(n_debris, 2))
    size_px = np.array([style.px(rng.uniform(*look.debris_um)) for _ in range(n_debris)])
    sign = np.where(rng.uniform(size=n_debris) < look.debris_dark_share, -1.0, 1.0)
    depth = sign * rng.uniform(*look.debris_gray, size=n_debris)
    owner = np.repeat(np.arange(n_debris), parts)
    offsets = rng.normal(0, 0.3, size=(owner.size, 2)) * size_px[owner, None]
    part_radius = size_px[owner] * rng.uniform(0.15, 0.4, size=owner.size)
    layer = blobs(shape, centres[owner] + offsets, part_radius, depth[owner])
    n_specks = count_in(rng, look.specks_per_mm2, area)
    centres = rng.uniform((0, 0), shape, size=(n_specks, 2))
    sign = np.where(rng.uniform(size=n_specks) < 0.5, -1.0, 1.0)
    radii = rng.uniform(*(style.px(um) for um in look.speck_um), size=n_specks)
    layer += blobs(shape, centres, radii, sign * rng.uniform(*look.speck_gray, size=n_specks))
    return layer


def membranes(rng: np.random.Generator, shape: tuple[int, int], style: LabStyle) -> np.ndarray:
    """(H, W) float32 gray levels: soft curved bands, out-of-focus membranes and processes.

    Drawn on a quarter-resolution canvas (they are wide and blurred) and zoomed up.
    """
    look = style.clutter
    area = shape[0] * shape[1] * style.mm2_per_px
    step = 4
    coarse = (shape[0] // step + 2, shape[1] // step + 2)
    canvas = np.zeros(coarse, np.float32)
    for _ in range(count_in(rng, look.membranes_per_mm2, area)):
        length = rng.uniform(0.1, 0.5) * max(shape) / step
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.06, int(length) + 2))
        path = rng.uniform((0, 0), coarse) + np.cumsum(
            np.stack([-np.sin(heading), np.cos(heading)], axis=1), axis=0
        )
        width = style.px(rng.uniform(*look.membrane_um)) / step
        sign = 1.0 if rng.uniform() < 0.5 else -1.0
        band = np.zeros(coarse, np.float32)
        rc = np.floor(path).astype(np.int64)
        keep = (rc[:, 0] >= 0) & (rc[:, 0] < coarse[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < coarse[1])
        np.add.at(band, (rc[keep, 0], rc[keep, 1]), 1.0)
        band = ndimage.gaussian_filter(band, max(width / 2.3548, 0.5))
        peak = float(band.max())
        if peak > 0:
            canvas += sign * rng.uniform(*look.membrane_gray) * band / peak
    return ndimage.zoom(canvas, step, order=1)[: shape[0], : shape[1]].astype(np.float32)
