"""The plugin's settings: the shipped predict config (inference keys and the palette), composed
once per use so the plugin and `python -m neuroseg.predict` never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import neuroseg.data.settings  # noqa: F401  (registers conf/palette's schema for composing)
import neuroseg.inference.settings  # noqa: F401  registers inference/schema, which predict uses

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# Labels saved from napari are corrections: named apart from predict's `pred_<n>.png` copies.
CORRECTED_PREFIX = "corrected"


def predict_config(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/predict.yaml with `overrides`, as `python -m neuroseg.predict` would see it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("predict", overrides=list(overrides))


def palette() -> dict[str, object]:
    """The whole palette config: what labels.class_mask reads painted labels with."""
    return OmegaConf.to_container(predict_config().palette, resolve=True)
