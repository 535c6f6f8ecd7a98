"""One lab-style field written into the sample raw tree: the original, the labels as the lab paints
them (`labels/`, `labels_axons/`, JPEG), the full thin truth and the true lattice coverage.

    originals/<condition>/<n>.tif              gray, 8- or 16-bit
    labels/<condition>/label_<n>.jpg           neuron blobs painted
    labels_axons/<condition>/label_<n>.jpg     neuron blobs and a share of the axons as strokes
    truth/<condition>/<n>.png                  0/1/2 class map: every axon (thin), exact cells
    truth/grid/<condition>/<n>.png             0/1: where the pillars are (all 0 on flat plates)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroseg import io
from neuroseg.data.lab_image import LabImage


def paint_lab_label(
    lab: LabImage, with_axons: bool, paint_rgb: dict[str, tuple[int, int, int]]
) -> np.ndarray:
    """(H, W, 3) uint8: an 8-bit RGB copy of the image with the lab's paint on it: strokes (with
    axons), then neuron blobs over them, clusters and isolated cells in their own colours."""
    gray = lab.image if lab.image.dtype == np.uint8 else np.round(lab.image / 257.0)
    rgb = np.repeat(gray.astype(np.uint8)[..., None], 3, axis=-1)
    painting = lab.painting
    if with_axons:
        rgb[painting.strokes] = paint_rgb["axon"]
    rgb[painting.neurons & ~painting.clusters] = paint_rgb["isolated"]
    rgb[painting.clusters] = paint_rgb["cluster"]
    return rgb


def write_lab_sample(
    raw_dir: Path, image_path: str, lab: LabImage, duplicate_of: str, jpeg_quality: int,
    paint_rgb: dict[str, tuple[int, int, int]], pixel_size_um: float,
) -> dict[str, object]:  # fmt: skip
    """Write one lab-style field's files (module docstring); return its truth/images.csv row."""
    condition, number = Path(image_path).parent.name, Path(image_path).stem
    io.write_tiff(raw_dir / image_path, lab.image)
    for tree, with_axons in (("labels", False), ("labels_axons", True)):
        label = paint_lab_label(lab, with_axons, paint_rgb)
        io.write_jpeg(raw_dir / tree / condition / f"label_{number}.jpg", label, jpeg_quality)
    io.write_png(raw_dir / "truth" / condition / f"{number}.png", lab.classes)
    io.write_png(
        raw_dir / "truth" / "grid" / condition / f"{number}.png", lab.coverage.astype(np.uint8)
    )
    angle, spacing = lab.grid_angle_deg, lab.grid_spacing_px
    return {
        "image": image_path,
        "condition": condition,
        "grid_angle_deg": "" if angle is None else angle,
        "grid_spacing_px": "" if spacing is None else spacing,
        "axon_mode": "random" if angle is None else "steered",
        "duplicate_of": duplicate_of,
        "style": "lab",
        "pixel_size_um": pixel_size_um,
        **lab.truth,
    }
