"""Per-image measurements of a predicted class map: neuron count and areas, axon length."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from neuroseg.postprocess import CONNECTIVITY
from neuroseg.task import AXON, NEURON

COLUMNS = (
    "image",
    "height",
    "width",
    "neuron_count",
    "neuron_area_px",
    "axon_area_px",
    "axon_skeleton_length_px",
)


def count_objects(region: np.ndarray, min_px: int) -> int:
    """Connected components (8-connected) of an (H, W) bool region with at least `min_px` px."""
    labels, count = ndimage.label(region, structure=CONNECTIVITY)
    if count == 0:
        return 0
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return int((sizes >= min_px).sum())


def skeleton_length_px(region: np.ndarray) -> int:
    """Pixels of the one-pixel-wide skeleton of an (H, W) bool region: a length in px."""
    if not region.any():
        return 0
    return int(skeletonize(region).sum())


def measure(mask: np.ndarray, num_classes: int, min_neuron_px: int) -> dict[str, int | str]:
    """Morphometrics of an (H, W) uint8 class map; axon columns are empty for a binary model.

    neuron_count counts components of at least `min_neuron_px` px (specks are not cells);
    the areas count every pixel of the class.
    """
    neurons = mask == NEURON
    has_axons = num_classes > AXON
    axons = mask == AXON
    return {
        "height": int(mask.shape[0]),
        "width": int(mask.shape[1]),
        "neuron_count": count_objects(neurons, min_neuron_px),
        "neuron_area_px": int(neurons.sum()),
        "axon_area_px": int(axons.sum()) if has_axons else "",
        "axon_skeleton_length_px": skeleton_length_px(axons) if has_axons else "",
    }
