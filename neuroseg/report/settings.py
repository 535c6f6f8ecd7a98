"""conf/report/*.yaml as a frozen dataclass: what the HTML report draws and how much of it.

Importing this module registers the schema with Hydra as `report/schema`; the YAML lists it in
its defaults, so `report.thumbnail_px=abc` fails when the config is composed, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from neuroseg.configs import schema
from neuroseg.errors import UsageError


@dataclass(frozen=True)
class ReportColors:
    """RGB of what the thumbnails draw over the gray image."""

    neurons: list[int]
    axons: list[int]
    lattice: list[int]
    grid_map: list[int]


@dataclass(frozen=True)
class ReportSettings:
    """The keys of conf/report/default.yaml (their comments say what each means)."""

    thumbnail_px: int
    examples: int
    rank_by: str
    max_table_rows: int
    lattice_lines: int
    tint_alpha: float
    colors: ReportColors

    def __post_init__(self) -> None:
        for key in ("thumbnail_px", "lattice_lines", "max_table_rows"):
            if getattr(self, key) < 1:
                raise UsageError(f"report.{key}={getattr(self, key)}: choose 1 or more")
        if self.examples < 0:
            raise UsageError(f"report.examples={self.examples}: choose 0 or more")
        if not 0.0 <= self.tint_alpha <= 1.0:
            raise UsageError(f"report.tint_alpha={self.tint_alpha}: choose a fraction in [0, 1]")


ConfigStore.instance().store(group="report", name="schema", node=schema(ReportSettings))
