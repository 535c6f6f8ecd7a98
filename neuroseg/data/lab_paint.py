"""Labels as the lab paints them (lab style): only a share of the axons, each as a thick rough
stroke that wobbles around it and often stops short; neurons as blobs a few px generous.

Painters pick what they see: units (an axon, a whole fascicle, a bridge bundle) are drawn for
painting with weights of visible length x contrast x straightness^2, without replacement, until
the painted axons reach the image's share. A fascicle gets one stroke wide enough for the bundle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from neuroseg.data.lab_axons import DrawnAxon, normals, wiggle
from neuroseg.data.lab_lines import near_field, resample
from neuroseg.data.lab_settings import LabStyle, PaintLook


@dataclass(frozen=True)
class Painting:
    """What the painter covered: strokes (H, W) bool, neuron blobs (H, W) bool and the part of
    them painted as clusters (H, W) bool; painted (N,) bool per drawn axon."""

    strokes: np.ndarray
    neurons: np.ndarray
    clusters: np.ndarray
    painted: np.ndarray


def visible_px(axon: DrawnAxon, shape: tuple[int, int]) -> float:
    """Length (px, 1 px samples) of the axon inside the field."""
    return float(near_field(axon.points, shape, 0).sum())


def straightness(axon: DrawnAxon, shape: tuple[int, int]) -> float:
    """End-to-end distance over path length of the axon's part in the field, in (0, 1]."""
    points = axon.points[near_field(axon.points, shape, 0)]
    if len(points) < 2:
        return 1.0
    path = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
    return float(np.linalg.norm(points[-1] - points[0])) / max(path, 1e-9)


def pick_units(
    rng: np.random.Generator, axons: list[DrawnAxon], shape: tuple[int, int], share: float,
    min_visible_px: float,
) -> set[int]:  # fmt: skip
    """Units to paint, drawn by visible length x contrast x straightness^2 until `share` of the
    visible axons (a bundle that would overshoot is passed over); an axon showing less than
    min_visible_px of itself is never picked."""
    visible = np.array([visible_px(a, shape) for a in axons])
    target = share * int((visible > 0).sum())
    weight: dict[int, float] = {}
    members: dict[int, int] = {}
    for axon, seen in zip(axons, visible, strict=True):
        if seen >= min_visible_px:
            eye = seen * abs(axon.contrast) * straightness(axon, shape) ** 2
            weight[axon.unit] = weight.get(axon.unit, 0.0) + eye
            members[axon.unit] = members.get(axon.unit, 0) + 1
    units = sorted(weight)
    # Gumbel top-k: sorting log-weight + Gumbel noise draws without replacement by weight.
    keys = np.log([weight[u] for u in units]) + rng.gumbel(size=len(units))
    chosen: set[int] = set()
    painted = 0
    for index in np.argsort(-keys):
        size = members[units[index]]
        if painted >= target:
            break
        if chosen and painted + size > target + 1:
            continue  # a bundle too big for what is left: the next pick may fit
        chosen.add(units[index])
        painted += size
    return chosen


def stroke_spine(unit_axons: list[DrawnAxon], shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """(longest run of the unit's most visible axon inside the field (N, 2), half-span px of
    the unit's other axons around it in the field: the 75th percentile of their distance)."""
    middle = max(unit_axons, key=lambda a: visible_px(a, shape))
    inside = near_field(middle.points, shape, 0)
    runs, _ = ndimage.label(inside)
    longest = np.bincount(runs[runs > 0]).argmax() if inside.any() else 0
    spine = middle.points[runs == longest]
    others = [a.points[near_field(a.points, shape, 0)] for a in unit_axons if a is not middle]
    others = [points for points in others if len(points)]
    if not others or len(spine) < 2:
        return spine, 0.0
    distance, _ = cKDTree(spine).query(np.concatenate(others))
    return spine, float(np.percentile(distance, 75))


def stroke_path(
    rng: np.random.Generator, spine: np.ndarray, span: float, look: PaintLook, style: LabStyle
) -> tuple[np.ndarray, np.ndarray]:
    """(points (M, 2), half widths (M,)) of one stroke: trimmed at the ends, wobbling around
    the spine, its width wandering around a width drawn from paint.stroke_um."""
    trim = rng.uniform(*look.end_short, size=2) * len(spine)
    spine = spine[int(trim[0]) : max(len(spine) - int(trim[1]), int(trim[0]) + 2)]
    # Wide enough for the bundle, but never wider than the widest stroke the lab paints.
    width = max(
        style.px(rng.uniform(*look.stroke_um)), min(2 * span + 4, style.px(look.stroke_um[1]))
    )
    scale = style.px(look.wobble_um)
    offset = look.offset_wobble * width * np.clip(wiggle(rng, len(spine), scale), -1.5, 1.5)
    half = width / 2 * np.clip(1 + look.width_wobble * wiggle(rng, len(spine), scale), 0.5, 1.5)
    points = spine + normals(spine) * offset[:, None] if len(spine) > 1 else spine
    return points, half


def fill_box(
    rng: np.random.Generator, seeds: np.ndarray, reach: np.ndarray, box: tuple[slice, slice],
    rough_px: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(pixels of `box` within reach[nearest seed] + a ragged edge of a seed, bool (h, w);
    (2, h, w) full-image index of that seed). seeds and reach are the full (H, W) maps."""
    distance, index = ndimage.distance_transform_edt(~seeds[box], return_indices=True)
    index[0] += box[0].start
    index[1] += box[1].start
    rough = ragged(rng, distance.shape, rough_px)
    return distance <= reach[index[0], index[1]] + rough, index


def padded_box(
    rows: np.ndarray, cols: np.ndarray, pad: int, shape: tuple[int, int]
) -> tuple[slice, slice]:
    """(row slice, col slice) around pixels (rows, cols), `pad` px wider, inside the field."""
    r0, r1 = max(int(rows.min()) - pad, 0), min(int(rows.max()) + pad + 1, shape[0])
    c0, c1 = max(int(cols.min()) - pad, 0), min(int(cols.max()) + pad + 1, shape[1])
    return slice(r0, r1), slice(c0, c1)


def ragged(rng: np.random.Generator, shape: tuple[int, int], amplitude_px: float) -> np.ndarray:
    """(h, w) float32: smooth noise (std amplitude_px, ~1.5 px grain) that frays painted edges."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.5)
    return noise * (amplitude_px * 2 * np.sqrt(np.pi) * 1.5)  # the blur's gain on white noise


def stroke_pixels(
    points: np.ndarray, half: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (K, 2) int64 the stroke's middle passes through in the field, half width (K,))."""
    dense = resample(points, 0.5)
    half = np.interp(np.linspace(0, 1, len(dense)), np.linspace(0, 1, len(half)), half)
    rc = np.floor(dense).astype(np.int64)
    keep = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    return rc[keep], half[keep]


def paint_strokes(
    rng: np.random.Generator, axons: list[DrawnAxon], units: set[int], shape: tuple[int, int],
    style: LabStyle,
) -> np.ndarray:  # fmt: skip
    """(H, W) bool: one stroke per painted unit, round-capped, with a ragged edge."""
    look = style.paint
    rough_px = style.px(look.edge_rough_um)
    strokes = np.zeros(shape, bool)
    for unit in sorted(units):
        spine, span = stroke_spine([a for a in axons if a.unit == unit], shape)
        rc, half = stroke_pixels(*stroke_path(rng, spine, span, look, style), shape)
        if not len(rc):
            continue
        seeds = np.zeros(shape, bool)
        reach = np.zeros(shape, np.float32)
        seeds[rc[:, 0], rc[:, 1]] = True
        np.maximum.at(reach, (rc[:, 0], rc[:, 1]), half)
        box = padded_box(rc[:, 0], rc[:, 1], int(np.ceil(half.max() + 4 * rough_px)) + 2, shape)
        strokes[box] |= fill_box(rng, seeds, reach, box, rough_px)[0]
    return strokes


def paint_neurons(
    rng: np.random.Generator, neurons: np.ndarray, clustered: np.ndarray, style: LabStyle
) -> tuple[np.ndarray, np.ndarray]:
    """(blobs (H, W) bool, cluster-painted part (H, W) bool): the cells grown by a margin drawn
    from paint.neuron_margin_um, ragged; each blob pixel takes the kind of its nearest cell."""
    look = style.paint
    rough_px = style.px(look.edge_rough_um)
    margin = style.px(rng.uniform(*look.neuron_margin_um))
    pad = int(np.ceil(margin + 4 * rough_px)) + 2
    reach = np.full(neurons.shape, margin, np.float32)
    blobs, clusters = neurons.copy(), neurons & clustered
    # One small transform per touching group of cells, its box widened by the reach; where
    # boxes overlap, a pixel is painted if any box paints it.
    groups, _ = ndimage.label(neurons, structure=np.ones((3, 3)))
    for found in ndimage.find_objects(groups):
        rows = np.array([found[0].start, found[0].stop - 1])
        cols = np.array([found[1].start, found[1].stop - 1])
        box = padded_box(rows, cols, pad, neurons.shape)
        filled, index = fill_box(rng, neurons, reach, box, rough_px)
        blobs[box] |= filled
        clusters[box] |= filled & clustered[index[0], index[1]]
    return blobs, clusters


def paint_labels(
    rng: np.random.Generator, axons: list[DrawnAxon], neurons: np.ndarray,
    clustered: np.ndarray, style: LabStyle,
) -> Painting:  # fmt: skip
    """The lab's painting of one field: strokes for a share drawn from paint.painted_share."""
    shape = neurons.shape
    share = float(rng.uniform(*style.paint.painted_share))
    units = pick_units(rng, axons, shape, share, style.px(style.paint.min_visible_um))
    strokes = paint_strokes(rng, axons, units, shape, style)
    blobs, clusters = paint_neurons(rng, neurons, clustered, style)
    painted = np.array([a.unit in units for a in axons], bool)
    return Painting(strokes, blobs, clusters, painted)
