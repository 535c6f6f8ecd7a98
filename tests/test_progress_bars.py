"""Progress bars of predict (images and windows), evaluate, prepare and analyze: drawn on a
terminal, silent in logs and pipes, off with progress=false."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from omegaconf import DictConfig

from neuroseg.analysis.report import run_analysis
from neuroseg.analysis.settings import analyze_settings
from neuroseg.evaluate import evaluate
from neuroseg.io import write_tiff
from neuroseg.models.ternausnet import build_model
from neuroseg.predict import predict
from neuroseg.prepare import prepare
from neuroseg.runtime import progress_bar


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, and keeps what was drawn on it."""

    def isatty(self) -> bool:
        return True


def stderr_as(screen: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Make `screen` the process's stderr for the rest of the test (not in a fixture: pytest's
    capture puts its own stream back between setup and the test)."""
    monkeypatch.setattr(sys, "stderr", screen)
    return screen


def config(name: str, overrides: list[str]) -> DictConfig:
    with initialize(version_base="1.3", config_path="../conf"):
        return compose(name, overrides=overrides)


def test_bar_counts_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = stderr_as(Terminal(), monkeypatch)
    assert list(progress_bar(range(3), "images", "image")) == [0, 1, 2]
    drawn = terminal.getvalue()
    assert "images" in drawn and "3/3" in drawn and "image/s" in drawn
    terminal.seek(0), terminal.truncate()
    assert list(progress_bar(range(3), "images", "image", enabled=False)) == [0, 1, 2]
    assert terminal.getvalue() == ""


def test_bar_silent_in_a_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = stderr_as(io.StringIO(), monkeypatch)
    assert list(progress_bar(range(3), "images", "image")) == [0, 1, 2]
    assert pipe.getvalue() == ""


@pytest.fixture
def predict_setup(
    tmp_path: Path, write_legacy_checkpoint: Callable[[torch.nn.Module, Path], Path]
) -> list[str]:
    """Overrides for predict on two 64x96 images with 32x32 windows (6 batches of 2 each)."""
    torch.manual_seed(0)
    ckpt = write_legacy_checkpoint(build_model("vgg11", 1, weights=None), tmp_path / "u.pth")
    for name in ("a", "b"):
        write_tiff(tmp_path / "in" / f"{name}.tif", np.zeros((64, 96), np.uint8))
    return [
        f"ckpt_path={ckpt}",
        "encoder=vgg11",
        "task=binary",
        "device=cpu",
        "window=[32,32]",
        "overlap=0",
        "batch_size=1",
        f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'out'}",
    ]


def test_predict_images_and_windows(
    predict_setup: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = stderr_as(Terminal(), monkeypatch)
    predict(config("predict", predict_setup))
    drawn = terminal.getvalue()
    assert "images" in drawn and "2/2" in drawn  # 2 images
    # 2x3 windows of 32 px, one per batch; the inner bar is cleared when done (leave=False), so
    # whether its last count was drawn depends on tqdm's refresh timing: check its total
    assert "windows" in drawn and "0/6 [" in drawn


def test_predict_quiet_in_a_pipe_and_when_off(
    predict_setup: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = stderr_as(io.StringIO(), monkeypatch)
    predict(config("predict", predict_setup))
    assert "images" not in pipe.getvalue() and "windows" not in pipe.getvalue()
    screen = stderr_as(Terminal(), monkeypatch)
    predict(config("predict", [*predict_setup, "progress=false"]))
    assert "images" not in screen.getvalue() and "windows" not in screen.getvalue()


def test_evaluate_images(
    tmp_path: Path,
    prepared_dir: Path,
    write_legacy_checkpoint: Callable[[torch.nn.Module, Path], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = stderr_as(Terminal(), monkeypatch)
    torch.manual_seed(0)
    ckpt = write_legacy_checkpoint(build_model("vgg11", 1, weights=None), tmp_path / "u.pth")
    overrides = [f"ckpt_path={ckpt}", "encoder=vgg11", "task=binary", "device=cpu"]
    overrides += [f"data_dir={prepared_dir}", f"output={tmp_path / 'out'}"]
    evaluate(config("evaluate", overrides))
    assert "test images" in terminal.getvalue() and "2/2" in terminal.getvalue()  # 2 test images


def test_prepare_images(raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = stderr_as(Terminal(), monkeypatch)
    overrides = [f"raw_dir={raw_dir}", f"out_dir={tmp_path / 'prepared'}", "workers=1"]
    prepare(config("prepare", overrides))
    drawn = terminal.getvalue()
    assert "checking" in drawn and "11/11" in drawn  # 11 originals, one a duplicate
    assert "writing tiles" in drawn and "10/10" in drawn


def test_analyze_images(raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = stderr_as(Terminal(), monkeypatch)
    run_analysis(*analyze_settings(config("analyze", [f"images={raw_dir}", f"output={tmp_path}"])))
    assert "images" in terminal.getvalue() and "11/11" in terminal.getvalue()
