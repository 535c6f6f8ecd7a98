"""Axon centre lines into pixels (lab style): the gray image of thin axons, their thin truth, and
the truth alignment measured on the lines themselves.

Pixel (r, c) covers [r, r + 1) x [c, c + 1); its centre is (r + 0.5, c + 0.5). A line of width
w px (FWHM) is drawn with a Gaussian cross profile of sigma w / 2.355 and the line's contrast
at its centre, plus a faint opposite-signed halo; its truth marks 1 px (w < 1.5) or 2 px across.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neuroseg.analysis.orientation import alignment_index
from neuroseg.data.lab_axons import DrawnAxon, normals

STEP_PX = 0.25  # spacing of the samples a line is drawn and measured with


def resample(points: np.ndarray, step: float = STEP_PX) -> np.ndarray:
    """(M, 2) points `step` px apart along the polyline `points` (N, 2)."""
    if len(points) < 2:
        return points.astype(np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    at = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(at, arc, points[:, k]) for k in (0, 1)], axis=1)


def near_field(points: np.ndarray, shape: tuple[int, int], pad: float) -> np.ndarray:
    """bool per point: within `pad` px of the field [0, H) x [0, W)."""
    return (
        (points[:, 0] >= -pad)
        & (points[:, 0] < shape[0] + pad)
        & (points[:, 1] >= -pad)
        & (points[:, 1] < shape[1] + pad)
    )


def splat(image: np.ndarray, points: np.ndarray, weights: np.ndarray) -> None:
    """Add `weights` (M,) at `points` (M, 2) px into `image` (H, W), split bilinearly."""
    at = points - 0.5
    base = np.floor(at).astype(np.int64)
    frac = at - base
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        share = (frac[:, 0] if dr else 1 - frac[:, 0]) * (frac[:, 1] if dc else 1 - frac[:, 1])
        rows, cols = base[:, 0] + dr, base[:, 1] + dc
        keep = (rows >= 0) & (rows < image.shape[0]) & (cols >= 0) & (cols < image.shape[1])
        np.add.at(image, (rows[keep], cols[keep]), weights[keep] * share[keep])


def draw_lines(
    axons: list[DrawnAxon], shape: tuple[int, int], halo: float, halo_px: float
) -> np.ndarray:
    """(H, W) float32 gray levels: every axon's signed contrast along its line.

    Axons are grouped by sigma (0.2 px bins); each group is splatted (weight per sample
    contrast x sqrt(2 pi) sigma x step, so the blurred peak is the contrast) and blurred once;
    the halo (sigma halo_px, peak `halo` x contrast, opposite sign) is blurred once for all.
    """
    layer = np.zeros(shape, np.float32)
    halo_density = np.zeros(shape, np.float32)
    groups: dict[float, list[DrawnAxon]] = {}
    for axon in axons:
        sigma = max(round(axon.width_px / 2.3548 / 0.2) * 0.2, 0.4)
        groups.setdefault(sigma, []).append(axon)
    for sigma, members in sorted(groups.items()):
        density = np.zeros(shape, np.float32)
        for axon in members:
            points = resample(axon.points)
            points = points[near_field(points, shape, 4 * halo_px)]
            weight = axon.contrast * np.sqrt(2 * np.pi) * sigma * STEP_PX
            splat(density, points, np.full(len(points), weight))
        layer += ndimage.gaussian_filter(density, sigma)
        halo_density += density * (halo * halo_px / sigma)
    if halo:
        layer -= ndimage.gaussian_filter(halo_density, halo_px)
    return layer


def line_truth(axons: list[DrawnAxon], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels each centre line passes through, 2 px across for w >= 1.5 px."""
    mask = np.zeros(shape, bool)
    for axon in axons:
        points = resample(axon.points)
        inside = near_field(points, shape, 2)
        if not inside.any():
            continue
        offsets = (0.0,) if axon.width_px < 1.5 else (-0.5, 0.5)
        side = normals(points) if len(points) > 1 else np.zeros_like(points)
        for offset in offsets:
            rc = np.floor(points[inside] + offset * side[inside]).astype(np.int64)
            keep = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
            mask[rc[keep, 0], rc[keep, 1]] = True
    return mask


def line_steps(
    axons: list[DrawnAxon], shape: tuple[int, int], hidden: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(direction deg [0, 180), length px, row, col of the midpoint) of every STEP_PX step of
    every line whose midpoint lies in the field and off `hidden` (H, W) bool (cells)."""
    parts = []
    for axon in axons:
        points = resample(axon.points)
        if len(points) < 2:
            continue
        step = np.diff(points, axis=0)
        middle = (points[1:] + points[:-1]) / 2
        parts.append(np.column_stack([step, middle]))
    if not parts:
        return tuple(np.zeros(0) for _ in range(4))
    steps = np.concatenate(parts)
    rc = np.floor(steps[:, 2:]).astype(np.int64)
    keep = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    steps, rc = steps[keep], rc[keep]
    visible = ~hidden[rc[:, 0], rc[:, 1]]
    steps = steps[visible]
    # Counter-clockwise on screen: rows point down, so the angle of a step is atan2(-drow, dcol).
    direction = np.degrees(np.arctan2(-steps[:, 0], steps[:, 1])) % 180.0
    return direction, np.hypot(steps[:, 0], steps[:, 1]), steps[:, 2], steps[:, 3]


def truth_alignment(
    axons: list[DrawnAxon], hidden: np.ndarray, coverage: np.ndarray, reference_deg: float
) -> dict[str, float | str]:
    """The true alignment C (length-weighted mean of cos 4x the angle to `reference_deg`, as
    analysis/orientation.py alignment_index defines it) of the centre lines in the field off
    cells: over all of it, on the covered part (coverage (H, W) bool) and on the flat part,
    with the axon length (px) in each. A part without axon has an empty C."""
    direction, length, rows, cols = line_steps(axons, coverage.shape, hidden)
    on = (
        coverage[rows.astype(np.int64), cols.astype(np.int64)] if length.size else np.zeros(0, bool)
    )
    result: dict[str, float | str] = {}
    for name, keep in (("alignment_c", slice(None)), ("c_covered", on), ("c_flat", ~on)):
        c = (
            alignment_index(direction[keep], reference_deg, length[keep])
            if length[keep].sum() > 0
            else None
        )
        result[name] = "" if c is None else round(c, 4)
    result["axon_length_px"] = round(float(length.sum()), 1)
    result["length_covered_px"] = round(float(length[on].sum()), 1)
    result["length_flat_px"] = round(float(length[~on].sum()), 1)
    return result
