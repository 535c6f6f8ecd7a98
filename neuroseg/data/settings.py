"""Schemas of the data stage's config groups: conf/data/*.yaml and conf/palette/*.yaml.

Registered with Hydra's ConfigStore on import (as `data/schema` and `palette/schema`); each YAML
of these groups lists its schema first in its defaults, so an unknown key or a value of the wrong
type fails when the config is composed, naming the key, before any work starts. The YAML keeps
the values and their comments; the schema only says which keys exist and what they hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from neuroseg.errors import ChoiceError, UsageError


@dataclass
class AugmentSettings:
    """data.augment: train_transform's keyword arguments (neuroseg/data/transforms.py)."""

    hflip_p: float = 0.0
    vflip_p: float = 0.0
    brightness_limit: float = 0.0
    contrast_limit: float = 0.0
    brightness_contrast_p: float = 0.0
    noise_std_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    noise_p: float = 0.0


@dataclass
class DataSettings:
    """conf/data: NeuroSegDataModule's arguments but `task` (the task group) and `sample`."""

    dir: str = MISSING
    batch_size: int = MISSING
    eval_batch_size: int = MISSING
    crop_hw: list[int] = MISSING
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    cache: bool = False
    augment: AugmentSettings = field(default_factory=AugmentSettings)


@dataclass
class PaintColor:
    """One painted colour of a palette: its RGB and the class it marks (neurons | axons)."""

    rgb: list[int] = MISSING
    class_name: str = MISSING


@dataclass
class PaletteSettings:
    """conf/palette: labels.mask_from_palette's arguments but the image (see qlab.yaml)."""

    colors: dict[str, PaintColor] = MISSING
    seed_chroma: float = MISSING
    edge_chroma: float = MISSING
    hue_tol: float = MISSING
    luma_tol: float = MISSING
    reach_px: int = MISSING
    closing_footprint: str = MISSING
    closing_radius: int = MISSING


def checked(values: Mapping[str, Any], schema: type, section: str) -> dict[str, Any]:
    """`values` (a config section or a plain mapping) as plain values, checked against `schema`.

    Composing already refuses a typo or a wrong type; this also catches a key forced in with
    `+key=...` and a mapping a Python caller built: one line naming the key, and for an unknown
    key the valid ones.
    """
    if isinstance(values, DictConfig):  # resolved in place: interpolations reach the whole config
        values = OmegaConf.to_container(values, resolve=True)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return asdict(OmegaConf.to_object(merged))
    except OmegaConfBaseException as error:
        key = f"{section}.{error.full_key}" if getattr(error, "full_key", None) else section
        reason = str(error).splitlines()[0]
        line = f"{key}: {reason}; fix it in conf/{section}/ or the command"
        if not isinstance(error, ConfigKeyError):
            raise UsageError(line) from None
        if "." not in str(error.full_key):  # a nested schema's class is named in `reason`
            line += f"; the {section} keys are {[f.name for f in fields(schema)]}"
        raise ChoiceError(line) from None


def read_group_file(path: Path) -> DictConfig:
    """The values one conf/data or conf/palette YAML file sets, without its defaults list (which
    only names the schema): for benchmarks and tests that read a shipped file outside Hydra."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return node


def register() -> None:
    """Store the schemas where conf/data/*.yaml and conf/palette/*.yaml name them."""
    store = ConfigStore.instance()
    store.store(group="data", name="schema", node=DataSettings)
    store.store(group="palette", name="schema", node=PaletteSettings)


register()
