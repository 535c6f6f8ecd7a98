"""Axon directions from a class mask: skeleton, local direction per skeleton pixel, segments.

Directions are axial (an axon has no arrow): degrees in [0, 180), counter-clockwise from the
image x axis as displayed (rows point down), the same convention as `grid.py`. Length is
measured along the skeleton from each pixel's local direction (see `length_weights`), so
oblique and diagonal axons are neither under- nor overcounted.

Every angle a statistic uses is a length-weighted summary of these local directions, never one
straight line fitted to a whole piece: an L-shaped axon that runs along one grid axis and then
the other follows the grid at every pixel, and must read 0 deg from it, not 45 deg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

# The 8-neighbour ring in circular order (N, NE, E, SE, S, SW, W, NW) as (row, col) offsets.
RING = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


@dataclass(frozen=True)
class AxonMeasurement:
    """Axons of one mask: segments, short pieces cut, local direction and length per skeleton px.

    directions_deg and weights_px are (N,) float64 over the N skeleton pixels; their weighted
    histogram is the length-weighted orientation distribution. segment_px (N,) int64 holds each
    pixel's segment_id, 0 for branch points and pieces too short to be segments.
    """

    segments: list[Segment]
    too_short: int
    directions_deg: np.ndarray
    weights_px: np.ndarray
    segment_px: np.ndarray

    @property
    def length_px(self) -> float:
        """Total skeleton length of all axons in px (short pieces included)."""
        return float(self.weights_px.sum())


@dataclass(frozen=True)
class Segment:
    """One unbranched axon piece: skeleton length (px), direction (deg, [0, 180)), centre.

    direction_deg is the length-weighted axial mean of its local directions; straightness in
    [0, 1] is their mean resultant length on doubled angles: 1 for a straight piece, near 0 for
    an L, whose mean direction then means nothing (its angle to the grid is still exact).
    """

    segment_id: int
    length_px: float
    direction_deg: float
    straightness: float
    row: float
    col: float


def axon_skeleton(mask: np.ndarray, axon_value: int = 2) -> np.ndarray:
    """(H, W) bool one-pixel-wide centre lines of the pixels of class `axon_value`."""
    return skeletonize(mask == axon_value)


def neighbour_stack(skeleton: np.ndarray) -> np.ndarray:
    """(8, H, W) bool: whether each RING neighbour of every pixel is on the skeleton."""
    padded = np.pad(skeleton, 1)
    height, width = skeleton.shape
    return np.stack([padded[1 + dr : 1 + dr + height, 1 + dc : 1 + dc + width] for dr, dc in RING])


def length_weights(directions_deg: np.ndarray) -> np.ndarray:
    """(N,) px of axon per skeleton pixel: 1 / max(|cos|, |sin|) of its local direction.

    A digital line at angle a has one pixel per column (or row) step, so each pixel stands for
    1 / max(|cos a|, |sin a|) px of length: exact for straight lines at any angle, where
    counting 8-neighbour links (1 or sqrt(2)) overestimates oblique lines by up to 8 %.
    """
    angles = np.radians(directions_deg)
    return 1.0 / np.maximum(np.abs(np.cos(angles)), np.abs(np.sin(angles)))


def junctions(skeleton: np.ndarray) -> np.ndarray:
    """(H, W) bool branch points: skeleton pixels whose neighbours form 3 or more separate runs.

    Counting runs around the ring rather than neighbours keeps staircase pixels of a diagonal
    line (3 neighbours, 2 runs) from being taken for branch points.
    """
    ring = neighbour_stack(skeleton).astype(np.int8)
    runs = ((ring == 1) & (np.roll(ring, 1, axis=0) == 0)).sum(axis=0)
    return skeleton & (runs >= 3)


def axial_angle_deg(cxx: np.ndarray, cyy: np.ndarray, cxy: np.ndarray) -> np.ndarray:
    """Principal axis in [0, 180) of covariances of (x = col, y = row); -cxy as rows go down."""
    return (0.5 * np.degrees(np.arctan2(-2.0 * cxy, cxx - cyy))) % 180.0


def local_directions_deg(skeleton: np.ndarray, neighbourhood_px: int = 7) -> np.ndarray:
    """(N,) direction in [0, 180) at each skeleton pixel (row-major order of np.nonzero).

    PCA of the skeleton pixels within a disk of radius `neighbourhood_px`: long enough to
    average the one-pixel staircase of a digital line, short enough to follow a bending axon.
    """
    rows, cols = np.nonzero(skeleton)
    padded = np.pad(skeleton, neighbourhood_px)
    moments = np.zeros((6, rows.size))  # n, x, y, xx, yy, xy
    for dr in range(-neighbourhood_px, neighbourhood_px + 1):
        for dc in range(-neighbourhood_px, neighbourhood_px + 1):
            if dr * dr + dc * dc > neighbourhood_px**2:
                continue
            on = padded[rows + neighbourhood_px + dr, cols + neighbourhood_px + dc]
            moments += on * np.array([1, dc, dr, dc * dc, dr * dr, dc * dr])[:, None]
    n, x, y, xx, yy, xy = moments
    return axial_angle_deg(xx / n - (x / n) ** 2, yy / n - (y / n) ** 2, xy / n - x * y / n**2)


def segments(
    skeleton: np.ndarray,
    weights: np.ndarray,
    directions_deg: np.ndarray,
    min_segment_px: float = 15.0,
) -> tuple[list[Segment], int, np.ndarray]:
    """Unbranched skeleton pieces of at least `min_segment_px`, how many shorter ones were cut,
    and the (H, W) int64 map of segment ids (0 elsewhere).

    weights, directions_deg: (H, W) px of length and local direction per skeleton pixel. Pieces
    are the 8-connected parts left after removing branch points and their 8 neighbours (arms
    still touch diagonally next to a branch point), so crossing axons give separate segments.
    """
    branches = ndimage.binary_dilation(junctions(skeleton), structure=np.ones((3, 3)))
    labels, _ = ndimage.label(skeleton & ~branches, structure=np.ones((3, 3)))
    ids = np.zeros(skeleton.shape, np.int64)
    found: list[Segment] = []
    too_short = 0
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = np.nonzero(labels[box] == index)
        w = weights[box][rows, cols]
        if w.sum() < min_segment_px:
            too_short += 1
            continue
        doubled = np.radians(directions_deg[box][rows, cols]) * 2
        s, c = np.average(np.sin(doubled), weights=w), np.average(np.cos(doubled), weights=w)
        direction = float(np.degrees(np.arctan2(s, c)) / 2 % 180.0)
        rows, cols = rows + box[0].start, cols + box[1].start
        ids[rows, cols] = len(found) + 1
        centre = float(np.average(rows, weights=w)), float(np.average(cols, weights=w))
        found.append(
            Segment(len(found) + 1, float(w.sum()), direction, float(np.hypot(s, c)), *centre)
        )
    return found, too_short, ids


def measure_axons(
    mask: np.ndarray, axon_value: int = 2, neighbourhood_px: int = 7, min_segment_px: float = 15.0
) -> AxonMeasurement:
    """Skeletonise the axon class of a class mask (H, W) and measure its directions and segments."""
    skeleton = axon_skeleton(mask, axon_value)
    directions = local_directions_deg(skeleton, neighbourhood_px)
    weights = length_weights(directions)
    weight_map, direction_map = np.zeros(skeleton.shape), np.zeros(skeleton.shape)
    weight_map[skeleton] = weights  # np.nonzero order, as local_directions_deg
    direction_map[skeleton] = directions
    found, too_short, ids = segments(skeleton, weight_map, direction_map, min_segment_px)
    return AxonMeasurement(found, too_short, directions, weights, ids[skeleton])


def fold_relative_deg(direction_deg: np.ndarray, reference_deg: float) -> np.ndarray:
    """Angle to the nearest axis of a square lattice at `reference_deg`, folded to [0, 45]."""
    offset = (np.asarray(direction_deg, dtype=np.float64) - reference_deg) % 90.0
    return np.minimum(offset, 90.0 - offset)


def axial_mean_deg(angles_deg: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """Weighted mean of axial angles in [0, 180) (doubled-angle mean), None for no data."""
    angles = np.radians(np.asarray(angles_deg, dtype=np.float64)) * 2
    if angles.size == 0:
        return None
    s, c = np.average(np.sin(angles), weights=weights), np.average(np.cos(angles), weights=weights)
    return float(np.degrees(np.arctan2(s, c)) / 2 % 180.0)


def alignment_index(
    direction_deg: np.ndarray, reference_deg: float, weights: np.ndarray | None = None
) -> float | None:
    """Weighted mean of cos(4 (direction - reference)): +1 along the lattice axes, -1 along its
    diagonals, about 0 for directions without preference; None for no data."""
    angles = np.radians(np.asarray(direction_deg, dtype=np.float64) - reference_deg) * 4
    if angles.size == 0:
        return None
    return float(np.average(np.cos(angles), weights=weights))


def lattice_offset_deg(offsets_deg: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    """Weighted mean of angles on the 90-deg circle of a square lattice, in (-45, 45]; None for
    no data. Offsets are direction minus grid axis; 4 x angle maps all four axes onto one."""
    angles = np.radians(np.asarray(offsets_deg, dtype=np.float64)) * 4
    if angles.size == 0:
        return None
    s, c = np.average(np.sin(angles), weights=weights), np.average(np.cos(angles), weights=weights)
    mean = float(np.degrees(np.arctan2(s, c)) / 4)
    return 45.0 if mean <= -45.0 else mean


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float | None:
    """The value below which half the total weight lies (length-weighted median); None if empty."""
    if values.size == 0 or weights.sum() <= 0:
        return None
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def segment_offsets_deg(
    offsets_deg: np.ndarray, weights: np.ndarray, segment_px: np.ndarray, n_segments: int
) -> np.ndarray:
    """(n_segments,) each segment's length-weighted mean angle to the grid, in (-45, 45].

    offsets_deg, weights, segment_px: (N,) per skeleton pixel (segment_px as in AxonMeasurement).
    Averaged on the 90-deg circle, so an L along both axes reads 0, not 45.
    """
    angles = np.radians(offsets_deg) * 4
    s = np.bincount(segment_px, weights * np.sin(angles), minlength=n_segments + 1)[1:]
    c = np.bincount(segment_px, weights * np.cos(angles), minlength=n_segments + 1)[1:]
    mean = np.degrees(np.arctan2(s, c)) / 4
    return np.where(mean <= -45.0, 45.0, mean)
