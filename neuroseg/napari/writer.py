"""napari writer: a Labels layer painted onto its original in the lab's palette, lossless.

The path is the root of a tree laid out like the raw one (`labels/<condition>/corrected_<n>.png`,
and `labels_axons/` for 3 classes): copy it into the raw tree and prepare reads the correction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroseg import io
from neuroseg.data.labels import write_label_copies
from neuroseg.napari.settings import CORRECTED_PREFIX, palette
from neuroseg.task import AXON, NEURON


def label_classes(data: np.ndarray, name: str) -> np.ndarray:
    """(H, W) uint8 class map of a Labels layer; labels beyond 0/1/2 are refused by name."""
    values = np.unique(data)
    wrong = [int(v) for v in values if v not in (0, NEURON, AXON)]
    if wrong:
        raise ValueError(
            f"layer {name!r} holds labels {wrong}; paint with 0 (background), 1 (neurons) or "
            "2 (axons) only"
        )
    return np.asarray(data, np.uint8)


def write_labels(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Save the layer `data` painted onto the original named in its metadata; the paths written."""
    name = meta.get("name", "labels")
    info = (meta.get("metadata") or {}).get("neuroseg") or {}
    if not info.get("image"):
        raise ValueError(
            f"layer {name!r}: no original image recorded, and the label is painted over it; "
            "open the original with the neuroseg reader or segment it with the Segment widget"
        )
    original, target = Path(info["image"]), Path(path)
    if target.suffix:
        raise ValueError(f"{target}: give a folder (no extension); labels go to its labels/ tree")
    gray = io.to_gray(io.read_image(original))
    mask = label_classes(data, name)
    if mask.shape != gray.shape:
        raise ValueError(f"layer {name!r}: {mask.shape} but {original} is {gray.shape}")
    with_axons = bool(info.get("with_axons")) or bool((mask == AXON).any())
    condition, number = original.parent.name, original.stem
    colors = palette()["colors"]
    written = write_label_copies(
        target, condition, number, gray, mask, colors, CORRECTED_PREFIX, with_axons
    )
    return [str(p) for p in written]
