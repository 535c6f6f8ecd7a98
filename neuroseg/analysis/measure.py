"""Per-image measurement: grid from the original, axon directions from the mask, group pools.

Every angle here is a length-weighted summary of the skeleton's local directions (see
orientation.py), the same directions the plots and the alignment index use. An image of a grid
condition whose grid is not found is left out of the statistics and listed, never measured
against the image x axis as if it were a flat plate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np

from neuroseg import io
from neuroseg.analysis.design import PlateDesign, design_of
from neuroseg.analysis.grid import GridEstimate, grid_angle_deg
from neuroseg.analysis.orientation import (
    AxonMeasurement,
    alignment_index,
    axial_mean_deg,
    fold_relative_deg,
    measure_axons,
    segment_offsets_deg,
    weighted_median,
)
from neuroseg.analysis.settings import AnalysisSettings
from neuroseg.analysis.sources import ImageSource
from neuroseg.analysis.stats import GroupSummary, describe_group
from neuroseg.data.labels import class_mask
from neuroseg.data.pairing import pixel_hash

IMAGE_COLUMNS = (
    "image", "group", "grid_angle", "grid_spacing", "grid_confidence", "reference_deg",
    "axon_length_px", "axon_mean_direction_deg", "axon_alignment", "n_segments",
    "n_short_segments", "duplicate_of", "note", "included", "excluded_reason",
    "expected_spacing_px", "spacing_mismatch",
)  # fmt: skip
SEGMENT_COLUMNS = (
    "image", "group", "segment_id", "length_px", "direction_deg", "relative_deg", "row", "col",
    "straightness",
)  # fmt: skip


def read_pair(
    source: ImageSource, axon_value: int, palette: Mapping[str, object]
) -> tuple[np.ndarray, np.ndarray]:
    """Original (H, W) and class mask (H, W) uint8; painted RGB labels go through the palette."""
    image = io.read_image(source.image)
    mask = io.read_image(source.mask)
    if mask.ndim == 3 and mask.dtype == np.uint8:
        mask = class_mask(mask, palette)  # a painted label copy (labels_axons/)
    if mask.ndim != 2 or int(mask.max(initial=0)) > max(axon_value, 2):
        raise ValueError(
            f"{source.mask}: not a class-index mask (shape {mask.shape}, max {mask.max()}); "
            "use prepare's masks_axons/, truth/, labels_axons/ or predict's <stem>_mask.png"
        )
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"{source.mask}: {mask.shape[0]}x{mask.shape[1]} but {source.image} is "
            f"{image.shape[0]}x{image.shape[1]}; masks must match their originals"
        )
    return image, mask


@dataclass(frozen=True)
class ImageResult:
    """One image's table rows and the arrays its group pools (angles in deg, lengths in px)."""

    row: dict[str, object]
    segment_rows: list[dict[str, object]]
    arrays: dict[str, np.ndarray]


def measure_image(
    source: ImageSource, image: np.ndarray, mask: np.ndarray, settings: AnalysisSettings
) -> ImageResult:
    """Grid from the original, axons from the mask, angles relative to the grid (or reference)."""
    plate = design_of(source.group, settings.design, settings.pixel_size_um)
    grid = grid_angle_deg(image, plate.expected_spacing_px, **asdict(settings.grid))
    reference, excluded, note = reference_deg(grid, plate, settings.no_grid_reference_deg)
    axons = measure_axons(mask, **asdict(settings.axons))
    pixel_offsets = axons.directions_deg - reference
    offsets = segment_offsets_deg(
        pixel_offsets, axons.weights_px, axons.segment_px, len(axons.segments)
    )
    folded = np.abs(offsets)
    alignment = alignment_index(axons.directions_deg, reference, axons.weights_px)
    if axons.length_px == 0:
        note.append("no axons in mask")
    elif not axons.segments:
        note.append(f"no axon segment >= {settings.axons.min_segment_px:g} px")
    row = {
        "image": source.name, "group": source.group, "grid_angle": blank(grid.angle_deg),
        "grid_spacing": blank(grid.spacing_px), "grid_confidence": grid.confidence,
        "reference_deg": "" if excluded else reference,
        "axon_length_px": round(axons.length_px, 1),
        "axon_mean_direction_deg": blank(axial_mean_deg(axons.directions_deg, axons.weights_px)),
        "axon_alignment": "" if excluded else blank(alignment),
        "n_segments": len(axons.segments), "n_short_segments": axons.too_short,
        "duplicate_of": "", "note": "; ".join(note), "included": not excluded,
        "excluded_reason": excluded, "expected_spacing_px": blank(grid.expected_spacing_px),
        "spacing_mismatch": "" if grid.spacing_mismatch is None else grid.spacing_mismatch,
    }  # fmt: skip
    if excluded:
        return ImageResult(row, [], {})
    arrays = {
        "grid_found": np.array([grid.found]),
        "image_length": np.array([axons.length_px]),
        "alignment": np.array([np.nan if alignment is None else alignment]),
        "folded": folded,
        "offsets": offsets,
        "segment_length": np.array([s.length_px for s in axons.segments]),
        "pixel_offsets": pixel_offsets,
        "pixel_folded": fold_relative_deg(pixel_offsets, 0.0),
        "pixel_weights": axons.weights_px,
    }
    return ImageResult(row, segment_rows(source, axons, folded), arrays)


def reference_deg(
    grid: GridEstimate, plate: PlateDesign, no_grid_reference_deg: float
) -> tuple[float, str, list[str]]:
    """(axis the angles are measured from, reason the image is left out or "", notes).

    A flat plate is measured against the fixed reference even where a lattice seems to show
    (a false grid would steer its angles); a grid plate without a found grid is left out.
    """
    notes = []
    if grid.spacing_mismatch:
        notes.append(
            f"lattice at {grid.disagreeing_spacing_px:g} px, but the condition's spacing is "
            f"{grid.expected_spacing_px:g} px"
        )
    if plate.known and not plate.has_grid:
        seen = "no grid"
        if grid.found:
            seen = f"a grid found (confidence {grid.confidence:g}, {grid.spacing_px:g} px) ignored"
        notes.append(f"flat plate, {seen}; angles vs {no_grid_reference_deg:g} deg axis")
        return no_grid_reference_deg, "", notes
    if grid.found:
        return grid.angle_deg, "", notes
    if plate.has_grid:
        reason = f"no grid found (confidence {grid.confidence:g}) in a grid condition"
        return no_grid_reference_deg, reason, [*notes, reason]
    notes.append(
        f"no grid (confidence {grid.confidence:g}); angles vs {no_grid_reference_deg:g} deg axis"
    )
    return no_grid_reference_deg, "", notes


def segment_rows(
    source: ImageSource, axons: AxonMeasurement, folded: np.ndarray
) -> list[dict[str, object]]:
    """segments.csv rows: relative_deg is the segment's length-weighted angle to the grid."""
    return [
        {
            "image": source.name, "group": source.group, "segment_id": s.segment_id,
            "length_px": round(s.length_px, 1), "direction_deg": round(s.direction_deg, 2),
            "relative_deg": round(float(rel), 2), "row": round(s.row, 1),
            "col": round(s.col, 1), "straightness": round(s.straightness, 3),
        }
        for s, rel in zip(axons.segments, folded, strict=True)
    ]  # fmt: skip


# Called with each image, its mask and its final result while both are in memory (the report
# draws its thumbnails so, without reading every image twice).
ImageViewer = Callable[[ImageSource, np.ndarray, np.ndarray, ImageResult], None]


def measure_all(
    sources: Iterable[ImageSource], settings: AnalysisSettings, view: ImageViewer | None = None
) -> list[ImageResult]:
    """Measure every image; byte-identical repeats are marked and keep no arrays for the stats."""
    results, seen = [], {}
    for source in sources:
        image, mask = read_pair(source, settings.axons.axon_value, settings.palette)
        result = measure_image(source, image, mask, settings)
        first = seen.setdefault(pixel_hash(image), source.name)
        if first != source.name:
            note = "; ".join(filter(None, [result.row["note"], "duplicate: not in statistics"]))
            row = {**result.row, "duplicate_of": first, "note": note, "included": False}
            row["excluded_reason"] = f"duplicate of {first}"
            result = ImageResult(row, [], {})
        if view is not None:
            view(source, image, mask, result)
        results.append(result)
    return results


def pool(results: list[ImageResult]) -> dict[str, dict[str, np.ndarray]]:
    """Concatenate the arrays of every (non-duplicate) image per group, groups sorted by name."""
    groups: dict[str, dict[str, list[np.ndarray]]] = {}
    for result in results:
        if result.arrays:
            group = groups.setdefault(str(result.row["group"]), {})
            for key, array in result.arrays.items():
                group.setdefault(key, []).append(array)
    return {
        name: {key: np.concatenate(parts) for key, parts in group.items()}
        for name, group in sorted(groups.items())
    }


def describe_pool(
    group: str, arrays: Mapping[str, np.ndarray], near_axis_deg: float
) -> GroupSummary:
    """A group's summary whose median angle and near-axis share weigh local directions by
    length, as the plots and the alignment index do (segment counts stay as they were)."""
    summary = describe_group(
        group, arrays["grid_found"], arrays["image_length"], arrays["alignment"],
        arrays["folded"], arrays["segment_length"], near_axis_deg,
    )  # fmt: skip
    folded, weights = arrays["pixel_folded"], arrays["pixel_weights"]
    total = float(weights.sum())
    return replace(
        summary,
        median_folded_deg=weighted_median(folded, weights),
        near_axis_fraction=float(weights[folded <= near_axis_deg].sum()) / total if total else None,
    )


def blank(value: float | None, digits: int = 3) -> float | str:
    """A rounded number for a CSV cell, or an empty cell for None."""
    return "" if value is None else round(value, digits)
