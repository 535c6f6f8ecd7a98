"""Painted label copies (JPEG, solid lab colours over the gray image) <-> class masks.

JPEG keeps brightness (luma) at full resolution but stores colour (chroma) at half resolution
and blurs it, so a thin stroke's colour spreads onto its neighbours and fades in its middle.
A pixel is therefore read with both: chroma says which paint is near, luma says whether this
very pixel carries it (painted pixels have the paint's own luma; gray ones have the image's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import morphology

from neuroseg import io
from neuroseg.data.pairing import LABELS, LABELS_AXONS, label_path
from neuroseg.data.settings import PaletteSettings, checked
from neuroseg.errors import ChoiceError, InputError, UsageError
from neuroseg.inference.overlay import gray_to_rgb8
from neuroseg.task import AXON, BACKGROUND, NEURON

# JFIF's RGB -> (Y, Cb, Cr) matrix (the one JPEG files use); chroma here is centred on 0.
YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32
)
FOOTPRINTS = {"star": morphology.star, "disk": morphology.disk, "diamond": morphology.diamond}
CLASS_IDS = {"neurons": NEURON, "axons": AXON}


def to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 (Y in [0, 255], Cb and Cr in about [-128, 128]) of (..., 3) uint8 RGB."""
    # Per-channel arithmetic, not `@`: a BLAS call on (H*W, 3) oversubscribes cores inside
    # prepare's worker processes and was 30x slower there.
    channels = [rgb[..., c].astype(np.float32) for c in range(3)]
    return np.stack([sum(m * ch for m, ch in zip(row, channels, strict=True)) for row in YCBCR], -1)


def paint_classes(colors: Mapping[str, Mapping[str, object]]) -> dict[str, int]:
    """Class id (1 neuron, 2 axon) of every painted colour; errors list the valid choices."""
    classes = {}
    for name, spec in colors.items():
        rgb, class_name = spec.get("rgb"), spec.get("class_name")
        if class_name not in CLASS_IDS:
            raise ChoiceError(
                f"palette colour {name!r}: unknown class {class_name!r}; "
                f"choose one of {sorted(CLASS_IDS)}"
            )
        if not isinstance(rgb, Sequence) or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise UsageError(f"palette colour {name!r}: rgb {rgb!r}; give three values in 0..255")
        classes[name] = CLASS_IDS[class_name]
    return classes


def paint_match(
    ycbcr: np.ndarray,
    rgb: Sequence[int],
    seed_chroma: float,
    edge_chroma: float,
    hue_tol: float,
    luma_tol: float,
    reach_px: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) bool pixels that carry paint `rgb`, and (H, W) float32 their luma error.

    A pixel carries the paint if its luma is the paint's (within `luma_tol`), it holds at least
    `edge_chroma` of the paint's chroma, and within `reach_px` some pixel holds `seed_chroma` of
    it in the paint's hue (off-hue part at most `hue_tol` of it): colour says the paint is near,
    brightness says it is here.
    """
    paint = np.asarray(rgb, np.float32) @ YCBCR.T
    chroma = paint[1:]
    norm2 = float(chroma @ chroma)
    cb, cr = ycbcr[..., 1], ycbcr[..., 2]
    along = (cb * chroma[0] + cr * chroma[1]) / norm2  # 1.0 = the paint's full colour, 0 = gray
    across = np.abs(cr * chroma[0] - cb * chroma[1]) / norm2
    luma_error = np.abs(ycbcr[..., 0] - paint[0])
    seeds = (along >= seed_chroma) & (across <= hue_tol * along)
    near = ndimage.binary_dilation(seeds, structure=morphology.disk(reach_px))
    return near & (along >= edge_chroma) & (luma_error <= luma_tol), luma_error


def close_mask(mask: np.ndarray, closing_footprint: str, closing_radius: int) -> np.ndarray:
    """(H, W) bool closed with a `closing_footprint` of `closing_radius` px (0 leaves it)."""
    if closing_radius == 0:
        return mask
    if closing_footprint not in FOOTPRINTS:
        raise ChoiceError(
            f"unknown closing_footprint {closing_footprint!r}; choose one of {sorted(FOOTPRINTS)}"
        )
    footprint = FOOTPRINTS[closing_footprint](closing_radius)
    # Pad so that strokes touching the border are not eroded away from it.
    pad = footprint.shape[0]
    padded = np.pad(mask, pad, mode="edge")
    return ndimage.binary_closing(padded, structure=footprint)[pad:-pad, pad:-pad]


def mask_from_palette(
    rgb: np.ndarray,
    colors: Mapping[str, Mapping[str, object]],
    seed_chroma: float,
    edge_chroma: float,
    hue_tol: float,
    luma_tol: float,
    reach_px: int,
    closing_footprint: str,
    closing_radius: int,
) -> np.ndarray:
    """(H, W) uint8 class map (0 background, 1 neuron, 2 axon) of a painted (H, W, 3) uint8 label.

    Each pixel goes to the matching paint whose luma fits best; each class is then closed, and
    neurons are laid over axons (the lab paints cells over the axons that leave them). The
    settings live in conf/palette/ (see qlab.yaml for what each one means; check_palette checks
    a palette built in Python).
    """
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise InputError(
            f"painted label of shape {rgb.shape} {rgb.dtype}; expected (H, W, 3) uint8"
        )
    classes = paint_classes(colors)
    ycbcr = to_ycbcr(rgb)
    best_error = np.full(rgb.shape[:2], np.inf, np.float32)
    best_class = np.zeros(rgb.shape[:2], np.uint8)
    for name, spec in colors.items():
        match, error = paint_match(
            ycbcr, spec["rgb"], seed_chroma, edge_chroma, hue_tol, luma_tol, reach_px
        )
        better = match & (error < best_error)
        best_error[better] = error[better]
        best_class[better] = classes[name]
    out = np.full(rgb.shape[:2], BACKGROUND, np.uint8)
    for class_id in (AXON, NEURON):  # neurons last: they win where the two overlap
        out[close_mask(best_class == class_id, closing_footprint, closing_radius)] = class_id
    return out


def check_palette(palette: Mapping[str, object]) -> dict[str, object]:
    """mask_from_palette's settings, checked against the PaletteSettings schema (conf/palette):
    an unknown, missing or mistyped key, or no colour at all, fails in one line naming it."""
    settings = checked(palette, PaletteSettings, "palette")
    if not settings["colors"]:
        raise UsageError("palette.colors: empty; name at least one painted colour")
    return settings


def neuron_mask(rgb: np.ndarray, palette: Mapping[str, object]) -> np.ndarray:
    """(H, W) uint8 0/1 neuron mask of a painted label (the `labels/` copies)."""
    return (mask_from_palette(rgb, **check_palette(palette)) == NEURON).astype(np.uint8)


def class_mask(rgb: np.ndarray, palette: Mapping[str, object]) -> np.ndarray:
    """(H, W) uint8 0/1/2 mask of a label with axons painted too (the `labels_axons/` copies)."""
    return mask_from_palette(rgb, **check_palette(palette))


def read_mask(path: Path, palette: Mapping[str, object], task: str) -> np.ndarray:
    """Read a painted label and return its mask for `task` (binary 0/1 or axons 0/1/2)."""
    readers = {"binary": neuron_mask, "axons": class_mask}
    if task not in readers:
        raise ChoiceError(f"unknown task {task!r}; choose one of {sorted(readers)}")
    return readers[task](io.read_rgb(path), palette)


def paint_colors(colors: Mapping[str, Mapping[str, object]]) -> dict[int, tuple[int, int, int]]:
    """RGB each class is painted in: the first palette colour naming it (neurons magenta, axons
    red in qlab.yaml), so a painted copy reads back as the lab's own paint does."""
    painted: dict[int, tuple[int, int, int]] = {}
    for name, class_id in paint_classes(colors).items():
        painted.setdefault(class_id, tuple(int(v) for v in colors[name]["rgb"]))
    return painted


def paint_mask(
    gray: np.ndarray, mask: np.ndarray, colors: Mapping[str, Mapping[str, object]]
) -> np.ndarray:
    """(H, W, 3) uint8 label copy: `gray` (H, W) uint8/uint16 with each class > 0 of `mask`
    (H, W) painted solid in its palette colour; the inverse of mask_from_palette.

    Unpainted pixels stay gray (no chroma), painted ones carry the paint exactly, so a lossless
    (PNG) copy reads back as `mask` whenever the palette's closing_radius is 0.
    """
    if gray.shape != mask.shape:
        raise ValueError(f"mask {mask.shape} and image {gray.shape} differ in size; paint at size")
    painted = paint_colors(colors)
    unknown = sorted(set(np.unique(mask).tolist()) - {BACKGROUND, *painted})
    if unknown:
        raise ValueError(
            f"mask holds classes {unknown} that the palette paints in no colour; "
            f"use {sorted({BACKGROUND, *painted})} (0 background, 1 neurons, 2 axons)"
        )
    rgb = gray_to_rgb8(gray).copy()
    for class_id, color in painted.items():
        rgb[mask == class_id] = color
    return rgb


def write_label_copies(
    root: Path,
    condition: str,
    number: str,
    gray: np.ndarray,
    mask: np.ndarray,
    colors: Mapping[str, Mapping[str, object]],
    prefix: str,
    with_axons: bool,
) -> list[Path]:
    """Write `mask` painted onto `gray` as PNG label copies laid out like the lab's raw tree.

    `root/labels/<condition>/<prefix>_<number>.png` paints neurons only; `with_axons` (a 3-class
    mask) adds `root/labels_axons/...` with both, as the lab keeps them. A corrected copy dropped
    into the raw tree is then read by prepare like a hand-painted label.
    """
    top = AXON if with_axons else NEURON
    if mask.max(initial=0) > top:
        raise ValueError(
            f"mask holds class {int(mask.max())}; a {'3-class' if with_axons else 'binary'} "
            f"mask holds 0..{top}"
        )
    neurons = np.where(mask == NEURON, NEURON, BACKGROUND).astype(np.uint8)
    copies = {LABELS: paint_mask(gray, neurons, colors)}
    if with_axons:
        copies[LABELS_AXONS] = paint_mask(gray, mask, colors)
    written = []
    for tree, rgb in copies.items():
        path = label_path(root, tree, condition, number, prefix)
        io.write_png(path, rgb)
        written.append(path)
    return written
