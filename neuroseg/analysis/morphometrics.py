"""Per-image measurements of a predicted class map: neuron count and areas, axon length."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neuroseg.analysis.orientation import measure_axons
from neuroseg.inference.postprocess import CONNECTIVITY
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


def skeleton_length_px(region: np.ndarray) -> float:
    """Skeleton length in px of an (H, W) bool region, the same figure as analyze's axon_length_px.

    Delegates to `orientation.measure_axons` (default neighbourhood) so predict and analyze give
    one length for one mask: each skeleton pixel counts 1 / max(|cos|, |sin|) of its local
    direction, exact for straight lines at any angle, where counting skeleton pixels undercounts
    a 45 deg axon by 29 %. Every piece counts, short ones and branch points included.
    """
    if not region.any():
        return 0.0
    return measure_axons(region.astype(np.uint8), axon_value=1).length_px


def measure_mask(
    mask: np.ndarray, num_classes: int, min_neuron_px: int
) -> dict[str, int | float | str]:
    """Morphometrics of an (H, W) uint8 class map; axon columns are empty for a binary model.

    neuron_count counts components of at least `min_neuron_px` px (specks are not cells);
    the areas count every pixel of the class; the axon length is rounded to 0.1 px, as analyze's.
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
        "axon_skeleton_length_px": round(skeleton_length_px(axons), 1) if has_axons else "",
    }
