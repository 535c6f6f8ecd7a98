"""Optional clean-up of predicted class maps: drop specks, fill holes (off unless configured).

Off by default in evaluation so scores describe the network itself; predict may switch it on.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neuroseg.task import BACKGROUND

# 8-connectivity: diagonal neighbours belong to the same object (thin axons touch diagonally).
CONNECTIVITY = np.ones((3, 3), dtype=bool)


def remove_small_class_objects(mask: np.ndarray, class_id: int, min_object_px: int) -> np.ndarray:
    """Copy of an (H, W) class map; `class_id` objects under `min_object_px` px turn background."""
    labels, count = ndimage.label(mask == class_id, structure=CONNECTIVITY)
    if count == 0 or min_object_px <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes < min_object_px
    small[0] = False  # label 0 is everything that is not this class
    out = mask.copy()
    out[small[labels]] = BACKGROUND
    return out


def fill_class_holes(mask: np.ndarray, class_id: int) -> np.ndarray:
    """Copy of (H, W) class map with background holes enclosed by `class_id` set to `class_id`.

    Only background is filled, so a neuron enclosed by an axon loop stays a neuron.
    """
    region = mask == class_id
    filled = ndimage.binary_fill_holes(region)
    out = mask.copy()
    out[filled & ~region & (mask == BACKGROUND)] = class_id
    return out


def postprocess(
    mask: np.ndarray, num_classes: int, min_object_px: int = 0, fill_holes: bool = False
) -> np.ndarray:
    """Clean an (H, W) uint8 class map, every foreground class alike; holes first, then specks."""
    out = mask
    for class_id in range(1, num_classes):
        if fill_holes:
            out = fill_class_holes(out, class_id)
        if min_object_px > 1:
            out = remove_small_class_objects(out, class_id, min_object_px)
    return out
