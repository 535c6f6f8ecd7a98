"""The plate design (conf/analyze.yaml `conditions`, `pixel_size_um`) as the grid search uses it.

A group named in the conditions table is a grid plate of known spacing or a flat plate; the
spacing in px (spacing_um / pixel_size_um) narrows the grid search. Per condition, how often a
grid was found is itself a result: a low rate says the detector, not the biology, decides which
images are measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from neuroseg.analysis.settings import Condition
from neuroseg.errors import UsageError

GRID_COLUMNS = (
    "group", "spacing_um", "expected_spacing_px", "n_images", "n_grid_found", "detection_rate",
    "n_spacing_mismatch", "n_excluded",
)  # fmt: skip


@dataclass(frozen=True)
class PlateDesign:
    """What the conditions table says about a group: listed or not, grid or flat, spacing.

    expected_spacing_px is None for flat plates, unlisted groups, or without pixel_size_um.
    """

    known: bool
    has_grid: bool
    spacing_um: float | None
    expected_spacing_px: float | None


def design_of(
    group: str, conditions: Mapping[str, Condition], pixel_size_um: float | None
) -> PlateDesign:
    """The plate of `group`; a group missing from `conditions` is unknown (searched as before)."""
    if pixel_size_um is not None and not pixel_size_um > 0:
        raise UsageError(
            f"conf/analyze.yaml pixel_size_um: {pixel_size_um}; set the microscope's pixel size "
            "in um (e.g. 0.2) or null"
        )
    if group not in conditions:
        return PlateDesign(False, False, None, None)
    spacing = conditions[group].spacing_um
    if spacing is None:
        return PlateDesign(True, False, None, None)
    expected = None if pixel_size_um is None else float(spacing) / pixel_size_um
    return PlateDesign(True, True, float(spacing), expected)


def detection_rows(
    rows: list[dict[str, object]], plates: Mapping[str, PlateDesign]
) -> list[dict[str, object]]:
    """Per group of a known grid condition: images, grids found, rate, mismatches, exclusions.

    Duplicates are left out: they repeat an image already counted.
    """
    table = []
    for group in sorted(g for g, plate in plates.items() if plate.has_grid):
        own = [r for r in rows if r["group"] == group and not r["duplicate_of"]]
        found = sum(r["grid_angle"] != "" for r in own)
        table.append(
            {
                "group": group,
                "spacing_um": plates[group].spacing_um,
                "expected_spacing_px": plates[group].expected_spacing_px or "",
                "n_images": len(own),
                "n_grid_found": found,
                "detection_rate": round(found / len(own), 3) if own else "",
                "n_spacing_mismatch": sum(r["spacing_mismatch"] is True for r in own),
                "n_excluded": sum(r["included"] is False for r in own),
            }
        )
    return table


def grid_notes(
    rows: list[dict[str, object]],
    detection: list[dict[str, object]],
    plates: Mapping[str, PlateDesign],
) -> list[str]:
    """Summary lines: detection rate per grid condition, images left out, spacing mismatches,
    flat plates where a grid seemed to show (a warning: their angles ignore it)."""
    notes = [
        f"grid found in {d['n_grid_found']} of {d['n_images']} images of {d['group']} "
        f"({d['spacing_um']:g} um"
        + (f", searched near {d['expected_spacing_px']:g} px)" if d["expected_spacing_px"] else ")")
        for d in detection
    ]
    left_out = [f"{r['image']} ({r['excluded_reason']})" for r in rows if r["included"] is False]
    if left_out:
        notes.append(f"{len(left_out)} images left out of statistics: {'; '.join(left_out[:12])}")
    mismatch = [str(r["image"]) for r in rows if r["spacing_mismatch"] is True]
    if mismatch:
        notes.append(
            f"{len(mismatch)} images hold a lattice off their condition's spacing (wrong folder?): "
            + ", ".join(mismatch[:12])
        )
    flat = [p for p, plate in plates.items() if plate.known and not plate.has_grid]
    false_grids = [str(r["image"]) for r in rows if r["group"] in flat and r["grid_angle"] != ""]
    if false_grids:
        notes.append(
            f"warning: a grid was found on {len(false_grids)} flat-plate images (ignored; wrong "
            f"folder, or a threshold too low?): {', '.join(false_grids[:12])}"
        )
    return notes
