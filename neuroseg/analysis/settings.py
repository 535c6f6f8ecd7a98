"""What analyze's library code is told: conf/analyze.yaml's sections as frozen dataclasses.

Importing this module registers `AnalyzeConfig`'s schema with Hydra's ConfigStore as
`analyze_schema`; conf/analyze.yaml lists it first in its defaults, so a misspelt key
(`grid.min_confidenc=3`) or a wrong type (`stats.alpha=abc`) fails when the config is composed,
naming the key. The YAML keeps every value and its comment; the fields here have no defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from neuroseg.analysis.resampling import ALTERNATIVES
from neuroseg.configs import SCHEMA_TYPE, schema, settings
from neuroseg.errors import UsageError
from neuroseg.report.settings import ReportSettings


@dataclass(frozen=True)
class GridSettings:
    """Keywords of grid.grid_angle_deg after the image and expected spacing."""

    min_spacing_px: float
    max_spacing_px: float
    highpass_sigma_px: float
    min_confidence: float
    expected_min_confidence: float
    spacing_tolerance: float
    harmonic_confidence: float
    harmonic_ratio: float
    peak_radius_bins: int


@dataclass(frozen=True)
class AxonSettings:
    """Keywords of orientation.measure_axons after the mask."""

    axon_value: int
    neighbourhood_px: int
    min_segment_px: float


@dataclass(frozen=True)
class StatsSettings:
    """Keywords of conclusions.conclude: the tests on per-image (per-plate) alignment C."""

    alpha: float
    alternative: str
    permutations: int
    resamples: int
    confidence: float
    min_units: int
    seed: int

    def __post_init__(self) -> None:
        if self.alternative not in ALTERNATIVES:
            raise UsageError(
                f"stats.alternative: {self.alternative!r}; choose one of {list(ALTERNATIVES)}"
            )


@dataclass(frozen=True)
class SummarySettings:
    """summary.txt's description: the angle within which axon length counts as near an axis."""

    near_axis_deg: float


@dataclass(frozen=True)
class PlotSettings:
    """Histogram bins over [0, 45] deg (roses: 4x as many over 360 deg) and PNG resolution."""

    bins: int
    dpi: int


@dataclass(frozen=True)
class Condition:
    """One plate condition of the design: pillar height (nm), grid spacing (um); None: flat."""

    height_nm: float | None
    spacing_um: float | None


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the measurement, the claims, the summary, the plots and the report are told.

    conditions is the plate design ({} for none); palette reads painted label copies (RGB masks)
    with data/labels.py's class_mask.
    """

    grid: GridSettings
    axons: AxonSettings
    stats: StatsSettings
    summary: SummarySettings
    plots: PlotSettings
    conditions: dict[str, Condition] | None = field(
        metadata={SCHEMA_TYPE: Optional[dict[str, Any]]}  # noqa: UP045 (a runtime value OmegaConf reads)
    )  # entries checked when built: see neuroseg.configs
    pixel_size_um: float | None
    no_grid_reference_deg: float
    # typed by conf/palette's own schema (neuroseg.data.settings); any mapping of its keys here
    palette: dict[str, Any] = field(metadata={SCHEMA_TYPE: Any})
    report: ReportSettings  # report.html (conf/report/)

    @property
    def design(self) -> dict[str, Condition]:
        """The conditions table, {} when conf sets none."""
        return self.conditions or {}


@dataclass(frozen=True)
class AnalysisRun:
    """What one run reads and writes: images, masks (None: the layout's own), plate table (None:
    each image is a unit), output folder, the grouping; and whether it draws progress bars."""

    images: str
    masks: str | None
    plates: str | None
    output: str
    group_by: str
    progress: bool

    @property
    def mask_dir(self) -> Path | None:
        """The masks folder, None for the image layout's own (truth/, masks_axons/, ...)."""
        return Path(self.masks) if self.masks else None

    @property
    def plate_table(self) -> Path | None:
        """The plate table, None when each image is a unit."""
        return Path(self.plates) if self.plates else None


@dataclass(frozen=True)
class AnalyzeConfig(AnalysisSettings, AnalysisRun):
    """conf/analyze.yaml's whole root, as its schema: the run, the settings, and the keys every
    entry point carries."""

    task_name: str
    paths: dict[str, Any]


ConfigStore.instance().store(name="analyze_schema", node=schema(AnalyzeConfig))


def analyze_settings(cfg: DictConfig) -> tuple[AnalysisSettings, AnalysisRun]:
    """The composed analyze config as the library takes it; neuroseg.analyze calls it once."""
    return settings(AnalysisSettings, cfg), settings(AnalysisRun, cfg)
