"""napari reader: the lab's raw tree (originals, painted labels) and predict's outputs.

An original opens with its painted label decoded as a Labels layer; a painted label (the lab's
JPEG or a PNG copy) opens over its original; `<stem>_mask.png` opens as Labels with its overlay.
Every layer records its original in `metadata["neuroseg"]["image"]`, which the writer paints on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from napari.utils.colormaps import DirectLabelColormap

from neuroseg.data.labels import paint_colors, read_mask
from neuroseg.data.pairing import LABELS, LABELS_AXONS, ORIGINALS, label_number
from neuroseg.io import IMAGE_SUFFIXES, read_image
from neuroseg.napari.settings import palette
from neuroseg.task import AXON

LayerData = tuple[np.ndarray, dict, str]


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerData]] | None:
    """`read_layers` for one image file; None otherwise, so napari asks its other readers."""
    if isinstance(path, list) or Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return read_layers


def read_layers(path: str) -> list[LayerData]:
    """The layers of one file: image and/or Labels, by where the file sits (see module doc)."""
    path = Path(path)
    if path.name.endswith("_mask.png"):
        return mask_layers(path)
    if path.name.endswith("_overlay.png"):
        return [(read_image(path), {"name": path.stem, "rgb": True}, "image")]
    if path.parent.parent.name in (LABELS, LABELS_AXONS):
        return label_layers(path)
    return original_layers(path)


def neuroseg_meta(original: Path | None, with_axons: bool) -> dict[str, dict[str, object]]:
    """Layer metadata the writer and widget read: the original's path and the class count."""
    image = None if original is None else str(original)
    return {"neuroseg": {"image": image, "with_axons": with_axons}}


def palette_colormap() -> DirectLabelColormap:
    """Labels drawn in the palette's paint colours (neurons magenta, axons red), background clear:
    a correction looks as it will in the painted label image."""
    colors = {None: "transparent", 0: "transparent"}
    for class_id, rgb in paint_colors(palette()["colors"]).items():
        colors[class_id] = (*(value / 255 for value in rgb), 1.0)
    return DirectLabelColormap(color_dict=colors)


def labels_layer(mask: np.ndarray, name: str, original: Path | None, tree: str) -> LayerData:
    """A Labels layer of a class map (0 background, 1 neurons, 2 axons)."""
    meta = neuroseg_meta(original, tree == LABELS_AXONS or bool((mask == AXON).any()))
    return mask, {"name": name, "metadata": meta, "colormap": palette_colormap()}, "labels"


def find_file(folder: Path, number: str, of_label: bool) -> Path | None:
    """The image in `folder` numbered `number` (a label: after its last underscore); a PNG (a
    corrected copy) before a JPEG, as prepare prefers by default."""
    if not folder.is_dir():
        return None
    found = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES
        and not p.name.startswith(".")
        and (label_number(p.stem) if of_label else p.stem) == number
    ]
    return min(found, key=lambda p: (p.suffix.lower() != ".png", p.name), default=None)


def original_layers(path: Path) -> list[LayerData]:
    """An image; in the raw tree (`originals/<condition>/<n>`) also its painted label decoded."""
    layers: list[LayerData] = [
        (read_image(path), {"name": path.stem, "metadata": neuroseg_meta(path, False)}, "image")
    ]
    if path.parent.parent.name != ORIGINALS:
        return layers
    root, condition = path.parents[2], path.parent.name
    for tree, task in ((LABELS_AXONS, "axons"), (LABELS, "binary")):
        label = find_file(root / tree / condition, path.stem, of_label=True)
        if label is not None:
            mask = read_mask(label, palette(), task)
            return [*layers, labels_layer(mask, f"{path.stem} {tree}", path, tree)]
    return layers


def label_layers(path: Path) -> list[LayerData]:
    """A painted label decoded as Labels, over its original when the raw tree holds it (else
    over the painted copy itself: shown, but not savable, since paint hides the gray)."""
    tree, condition = path.parent.parent.name, path.parent.name
    original = find_file(path.parents[2] / ORIGINALS / condition, label_number(path.stem), False)
    shown = read_image(original if original is not None else path)
    image_meta = {"name": (original or path).stem, "metadata": neuroseg_meta(original, False)}
    mask = read_mask(path, palette(), "axons" if tree == LABELS_AXONS else "binary")
    return [(shown, image_meta, "image"), labels_layer(mask, f"{path.stem} {tree}", original, tree)]


def mask_layers(path: Path) -> list[LayerData]:
    """predict's `<stem>_mask.png` as Labels, with `<stem>_overlay.png` under it when present."""
    stem = path.name.removesuffix("_mask.png")
    overlay = path.with_name(f"{stem}_overlay.png")
    layers: list[LayerData] = []
    if overlay.is_file():
        layers.append((read_image(overlay), {"name": overlay.stem, "rgb": True}, "image"))
    mask = read_image(path)
    return [*layers, labels_layer(mask, f"{stem} prediction", None, LABELS)]
