"""What the lab-style sample world is told: conf/synth.yaml's `lab:` section as frozen dataclasses.

Importing this module registers `SynthConfig`'s schema with Hydra's ConfigStore as
`synth_schema`; conf/synth.yaml lists it first in its defaults, so a misspelt key
(`lab.axons.mesh_per_mm3=1`) or a wrong type fails when the config is composed, naming the key.
The YAML keeps every value and its comment (facts from shared/reference/real-images.md); the
fields here have no defaults. Ranges are [low, high] pairs a value is drawn from per image (or
per object). Sizes are in um and densities per mm^2 of field, so any image size and pixel size
draws the same world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

import neuroseg.data.settings  # noqa: F401 (registers palette/schema, which synth.yaml composes)
from neuroseg.configs import SCHEMA_TYPE, schema
from neuroseg.errors import UsageError

STYLES = ("clean", "lab")  # conf/synth.yaml style: the clean world (tests, demo) or the lab's


@dataclass(frozen=True)
class LightLook:
    """The empty field: flat level, uneven lamp light (relative), sensor noise (gray levels)."""

    background_gray: list[float]
    tilt: float
    vignette: float
    patches: float
    patch_um: float
    optics_blur_um: float
    noise_gray: float


@dataclass(frozen=True)
class LatticeLook:
    """Pillars: dark dots per grid spacing ("2", "4" um), partial coverage of some fields."""

    partial_share: float
    covered_share: list[float]
    flat_offset_gray: float
    pillar_um: dict[str, float]
    depth_gray: dict[str, list[float]]
    low_pillar_factor: float


@dataclass(frozen=True)
class ClutterLook:
    """What clutters a real field besides cells and axons: haze, membranes, debris, specks."""

    haze_gray: float
    haze_um: float
    texture_gray: float
    texture_um: float
    membranes_per_mm2: list[float]
    membrane_um: list[float]
    membrane_gray: list[float]
    debris_per_mm2: list[float]
    debris_um: list[float]
    debris_gray: list[float]
    debris_dark_share: float
    specks_per_mm2: list[float]
    speck_um: list[float]
    speck_gray: list[float]
    fibres_per_mm2: list[float]
    fibre_length_um: list[float]
    fibre_width_um: list[float]
    fibre_gray: list[float]
    grain_gray: float


@dataclass(frozen=True)
class CellLook:
    """Round neurons with dark rims and bright halos, mostly in clusters."""

    clusters_per_mm2: list[float]
    cluster_cells: list[int]
    isolated_per_mm2: list[float]
    diameter_um: list[float]
    squash: list[float]
    isolated_gap: float
    body_gray: list[float]
    rim_gray: list[float]
    halo_gray: list[float]
    halo_um: float
    hide_clutter: float
    hide_axons: float


@dataclass(frozen=True)
class AxonLook:
    """Thin axons: meshes, fascicles, bridges between clusters; steering by the lattice."""

    mesh_per_mm2: list[float]
    per_cell: list[int]
    length_um: list[float]
    persistence_um: float
    width_um: list[float]
    contrast_gray: list[float]
    bright_share: float
    halo: float
    halo_um: float
    fascicles_per_mm2: list[float]
    fascicle_axons: list[int]
    fascicle_spacing_um: list[float]
    fan_out: float
    bridge_share: float
    bridge_max_um: float
    bridge_axons: list[int]
    bridge_bow: float
    alignment: dict[str, float]


@dataclass(frozen=True)
class PaintLook:
    """How the lab paints labels: a share of the axons as thick rough strokes, generous blobs."""

    painted_share: list[float]
    min_visible_um: float
    stroke_um: list[float]
    width_wobble: float
    offset_wobble: float
    wobble_um: float
    edge_rough_um: float
    end_short: list[float]
    neuron_margin_um: list[float]


@dataclass(frozen=True)
class LabStyle:
    """style=lab: the lab's fields as real-images.md measures them (docs/sample-data.md)."""

    pixel_size_um: float
    margin_um: float
    light: LightLook
    lattice: LatticeLook
    clutter: ClutterLook
    cells: CellLook
    axons: AxonLook
    paint: PaintLook

    def __post_init__(self) -> None:
        if self.pixel_size_um <= 0:
            raise UsageError(
                f"lab.pixel_size_um {self.pixel_size_um}: must be > 0; "
                "set microscope.pixel_size_um (conf/microscope/)"
            )

    def px(self, um: float) -> float:
        """A length in um as px at this world's scale."""
        return um / self.pixel_size_um

    @property
    def mm2_per_px(self) -> float:
        """Field area of one pixel in mm^2 (densities are per mm^2)."""
        return (self.pixel_size_um * 1e-3) ** 2


@dataclass(frozen=True)
class SynthConfig:
    """conf/synth.yaml's whole root, as its schema: the clean keys, `lab`, and the groups."""

    style: str
    out_dir: str
    per_condition: int
    height: int
    width: int
    bit_depth: int
    seed: int
    duplicates: int
    pixel_size_um: float
    jpeg_quality: int
    paint_rgb: dict[str, list[int]]
    lab: LabStyle
    task_name: str
    paths: dict[str, Any]
    microscope: dict[str, Any]
    # typed by conf/palette's own schema (neuroseg.data.settings)
    palette: dict[str, Any] = field(metadata={SCHEMA_TYPE: Any})


ConfigStore.instance().store(name="synth_schema", node=schema(SynthConfig))
