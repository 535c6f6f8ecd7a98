"""Shared fixtures: a tiny synthetic raw tree and the dataset prepared from it (once a session),
and a writer of checkpoint files in the original project's format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from omegaconf import DictConfig

RAW_KWARGS = dict(per_condition=2, height=192, width=256, bit_depth=8, seed=0, duplicates=1)


def compose_prepare(overrides: list[str]) -> DictConfig:
    """The shipped prepare config with `overrides`, as `python -m neuroseg.prepare` would see it."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("prepare", overrides=overrides)


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synth raw tree: 5 conditions x 2 images + 1 exact duplicate, 192x256 uint8, with axons."""
    # Imported here, not at the top: test files that use neither fixture still collect (and
    # point at the right culprit) while the data code is broken.
    from neuroseg.data.sample_tree import make_dataset

    return make_dataset(tmp_path_factory.mktemp("synth") / "raw", **RAW_KWARGS)


@pytest.fixture(scope="session")
def prepared_dir(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`raw_dir` prepared with the default config: 10 images (duplicate dropped), 7/1/2 in
    train/val/test, 2x2 tiles of 96x128 (28/4/8 tiles), masks/ and masks_axons/."""
    from neuroseg.prepare import prepare

    out_dir = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(compose_prepare([f"raw_dir={raw_dir}", f"out_dir={out_dir}", "workers=1"]))
    return out_dir


@pytest.fixture(scope="session")
def write_legacy_checkpoint() -> Callable[[torch.nn.Module, Path], Path]:
    """`write(model, path) -> path`: saves a UNet11/UNet16 as the original's training script did,
    so load, evaluate and predict tests read the very format users bring."""
    from neuroseg.models.legacy import legacy_state_dict

    def write(model: torch.nn.Module, path: Path) -> Path:
        """{epoch, model_state_dict (original layout), optimizer_state_dict (Adam)} at `path`."""
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        state = {
            "epoch": 99,
            "model_state_dict": legacy_state_dict(model),
            "optimizer_state_dict": optimizer.state_dict(),
        }
        torch.save(state, path)
        return path

    return write
