"""One lab-style field with its truth: the lab's scale, clutter, dense thin axons, rimmed cells,
whole or partial lattices, and the labels the lab would paint on it (docs/sample-data.md).

`make_lab_image` draws it in memory; `neuroseg.data.lab_tree` writes it into the raw tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from neuroseg.data.lab_axons import DrawnAxon, draw_axon_lines, fibres, steering_for
from neuroseg.data.lab_cells import draw_neurons, place_neurons, world_of
from neuroseg.data.lab_lines import draw_lines, line_truth, truth_alignment
from neuroseg.data.lab_paint import Painting, paint_labels, visible_px
from neuroseg.data.lab_settings import LabStyle
from neuroseg.data.lab_surface import (
    Coverage,
    debris_and_specks,
    draw_coverage,
    haze_and_grain,
    membranes,
    pillar_lattice,
    uneven_light,
)
from neuroseg.data.sample_image import condition_geometry
from neuroseg.errors import UsageError
from neuroseg.task import AXON, NEURON


@dataclass(frozen=True)
class LabImage:
    """One lab-style field and everything known about it.

    image: (H, W) uint8 or uint16 gray; classes: (H, W) uint8 full thin truth, 0 background,
    1 neuron, 2 axon (neuron wins); clustered: (H, W) bool neuron pixels of clusters;
    coverage: (H, W) bool where the pillars are; grid_angle_deg in [0, 90) CCW from the image x
    axis and grid_spacing_px (None on flat plates); axons: every centre line drawn (image px,
    reaching beyond the field); painting: the lab-style labels; truth: the images.csv columns
    this style adds (alignment C from the centre lines, coverage, counts).
    """

    image: np.ndarray
    classes: np.ndarray
    clustered: np.ndarray
    coverage: np.ndarray
    grid_angle_deg: float | None
    grid_spacing_px: float | None
    axons: list[DrawnAxon]
    painting: Painting
    truth: dict[str, object]


def lattice_layer(
    rng: np.random.Generator, shape: tuple[int, int], condition: str, style: LabStyle
) -> tuple[np.ndarray, Coverage, float | None, float | None]:
    """(gray layer float32, coverage, axis deg, period px): pillar dots where the lattice is,
    and the flat part's own level; a flat plate has no lattice and is covered nowhere."""
    pillar_nm, spacing_um = condition_geometry(condition)
    if spacing_um is None:
        return np.zeros(shape, np.float32), Coverage(None, 0.0, 0.0), None, None
    look = style.lattice
    key = f"{spacing_um:g}"
    if key not in look.pillar_um or key not in look.depth_gray:
        raise UsageError(
            f"lab.lattice.pillar_um / depth_gray: no entry {key!r} for condition {condition}; "
            f"add the {key} um spacing to conf/synth.yaml"
        )
    angle = round(float(rng.uniform(0, 90)), 3)
    spacing = round(style.px(spacing_um), 6)
    depth = rng.uniform(*look.depth_gray[key]) * (look.low_pillar_factor if pillar_nm < 400 else 1)
    dots = pillar_lattice(shape, angle, spacing, style.px(look.pillar_um[key]), rng.uniform(size=2))
    coverage = draw_coverage(rng, shape, look)
    covered = coverage.mask(shape)
    flat_level = rng.uniform(-look.flat_offset_gray, look.flat_offset_gray)
    layer = np.where(covered, depth * dots, np.float32(flat_level)).astype(np.float32)
    return layer, coverage, angle, spacing


def render_gray(
    rng: np.random.Generator, shape: tuple[int, int], layers: dict[str, np.ndarray],
    style: LabStyle, bit_depth: int,
) -> np.ndarray:  # fmt: skip
    """The field's pixels: level + lattice and clutter (hidden under cells) + cells + axons,
    blurred a little by the optics, times uneven light, plus sensor noise; quantised."""
    hidden = layers["occlusion"]
    gray = np.float32(rng.uniform(*style.light.background_gray)) + layers["lattice"] * (1 - hidden)
    gray += layers["clutter"] * (1 - style.cells.hide_clutter * hidden) + layers["cells"]
    gray += layers["axons"] * (1 - style.cells.hide_axons * hidden)
    gray = ndimage.gaussian_filter(gray, style.px(style.light.optics_blur_um))
    gray *= uneven_light(rng, shape, style)
    gray += style.light.noise_gray * rng.standard_normal(shape, dtype=np.float32)
    if bit_depth == 8:
        return np.round(np.clip(gray, 0, 255)).astype(np.uint8)
    return np.round(np.clip(gray / 255.0, 0, 1) * 65535).astype(np.uint16)


def make_lab_image(
    rng: np.random.Generator, height: int, width: int, condition: str, style: LabStyle,
    bit_depth: int = 8,
) -> LabImage:  # fmt: skip
    """Draw one lab-style field of `condition` (one of sample_image.CONDITIONS)."""
    if height < 32 or width < 32:
        raise UsageError(f"image size {height}x{width}: both sides must be at least 32 px")
    if bit_depth not in (8, 16):
        raise UsageError(f"bit_depth {bit_depth}: choose 8 or 16")
    shape = (height, width)
    lattice, coverage, angle, spacing = lattice_layer(rng, shape, condition, style)
    world = world_of(shape, style)
    cells = place_neurons(rng, world, style)
    axons = draw_axon_lines(
        rng, world, cells, steering_for(condition, angle, coverage, style), style
    )
    cell_layer, occlusion, neurons, clustered = draw_neurons(rng, cells, shape, style)
    clutter = haze_and_grain(rng, shape, style) + membranes(rng, shape, style)
    clutter += debris_and_specks(rng, shape, style)
    clutter += draw_lines(fibres(rng, world, style), shape, 0.0, 1.0)
    look = style.axons
    layers = {"lattice": lattice, "occlusion": occlusion, "clutter": clutter, "cells": cell_layer}
    layers["axons"] = draw_lines(axons, shape, look.halo, style.px(look.halo_um))
    image = render_gray(rng, shape, layers, style, bit_depth)
    classes = np.zeros(shape, np.uint8)
    classes[line_truth(axons, shape)] = AXON
    classes[neurons] = NEURON  # cells are painted over the axons that leave them
    painting = paint_labels(rng, axons, neurons, clustered, style)
    covered = coverage.mask(shape)
    truth = truth_row(axons, painting, neurons, covered, angle, condition, style)
    truth["covered_share"] = round(coverage.share, 4)
    return LabImage(image, classes, clustered, covered, angle, spacing, axons, painting, truth)


def truth_row(
    axons: list[DrawnAxon], painting: Painting, neurons: np.ndarray, covered: np.ndarray,
    angle: float | None, condition: str, style: LabStyle,
) -> dict[str, object]:  # fmt: skip
    """The style's truth/images.csv columns: alignment from the centre lines (against the grid
    axis, or the image x axis on flat plates), the planted value, and axon counts."""
    shown = np.array([visible_px(a, neurons.shape) > 0 for a in axons], bool)
    row: dict[str, object] = {
        "planted_alignment": style.axons.alignment.get(condition, 0.0) if angle is not None else "",
        "n_axons_drawn": int(shown.sum()),
        "n_axons_painted": int((shown & painting.painted).sum()),
    }
    row |= truth_alignment(axons, neurons, covered, 0.0 if angle is None else angle)
    return row
