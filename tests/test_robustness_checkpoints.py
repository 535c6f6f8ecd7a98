"""Hostile checkpoints and user mistakes, for every command that takes them (issue 15, 3/6/9).

A pickled payload never runs unless trust_checkpoint=true; an unreadable file is one line naming
it; a user mistake on the command line is one line on stderr and exit status 2, with Hydra's
traceback kept for HYDRA_FULL_ERROR=1.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize
from omegaconf import DictConfig

from neuroseg.errors import InputError, MissingPathError, UnsafeCheckpointError, UsageError
from neuroseg.evaluate import evaluate
from neuroseg.io import write_png, write_tiff
from neuroseg.models.ternausnet import build_model
from neuroseg.predict import predict
from neuroseg.train import train

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "evaluate", "predict")
SLOW = pytest.mark.slow  # a subprocess that imports torch and Lightning: about 20 s on 2 cores


class Payload:
    """Unpickling this calls os.system, which touches `marker`: proof that code from a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def save_payload(path: Path, marker: Path, zip_format: bool) -> Path:
    """A checkpoint that looks like train's (hyper-parameters, model tensors) plus a payload."""
    saved = {
        "state_dict": {"model.final.weight": torch.zeros(1, 32, 1, 1)},
        "hyper_parameters": {"encoder": {"name": "vgg11"}, "task": "binary"},
        "callbacks": Payload(marker),
    }
    torch.save(saved, path, _use_new_zipfile_serialization=zip_format)
    return path


def command_config(name: str, ckpt: Path, tmp_path: Path, prepared_dir: Path) -> DictConfig:
    """The shipped config of `name` reading checkpoint `ckpt`, on tiny data, output in tmp_path."""
    common = [f"ckpt_path={ckpt}"]
    if name == "train":
        overrides = [
            f"data.dir={prepared_dir}",
            "encoder.weights=null",
            "trainer=cpu",
            "data.num_workers=0",
            f"paths.output_dir={tmp_path / 'run'}",
        ]
    else:
        overrides = [f"output={tmp_path / 'run'}", "device=cpu"]
    if name == "evaluate":
        overrides.append(f"data_dir={prepared_dir}")
    if name == "predict":
        write_tiff(tmp_path / "in" / "a.tif", np.zeros((64, 96), np.uint8))
        overrides.append(f"input={tmp_path / 'in'}")
    with initialize(version_base="1.3", config_path="../conf"):
        return compose(name, overrides=[*common, *overrides])


RUN = {"train": train, "evaluate": evaluate, "predict": predict}


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-format"])
@pytest.mark.parametrize("name", COMMANDS)
def test_payload_never_runs(
    name: str, zip_format: bool, tmp_path: Path, prepared_dir: Path
) -> None:
    marker = tmp_path / "ran"
    ckpt = save_payload(tmp_path / "payload.ckpt", marker, zip_format)
    with pytest.raises(UnsafeCheckpointError) as caught:
        RUN[name](command_config(name, ckpt, tmp_path, prepared_dir))
    assert not marker.exists()
    message = str(caught.value)
    assert str(ckpt) in message and re.search(r"\b(posix|os)\.system\b", message), message
    assert "trust_checkpoint=true" in message and "\n" not in message


def test_trusted_payload_runs_in_train(
    tmp_path: Path, prepared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flag is honoured both ways: trusted, the file is unpickled in full, by neuroseg's
    check and by Lightning (asked weights_only=False); Lightning's own run is stubbed."""
    fits: list[dict] = []
    monkeypatch.setattr(pl.Trainer, "fit", lambda self, *args, **kwargs: fits.append(kwargs))
    monkeypatch.setattr(pl.Trainer, "test", lambda self, *args, **kwargs: None)
    marker = tmp_path / "ran"
    ckpt = save_payload(tmp_path / "payload.ckpt", marker, zip_format=True)
    cfg = command_config("train", ckpt, tmp_path, prepared_dir)
    cfg.trust_checkpoint = True
    train(cfg)
    assert marker.exists()
    assert [(f["ckpt_path"], f["weights_only"]) for f in fits] == [(str(ckpt), False)]


def unreadable(kind: str, tmp_path: Path) -> Path:
    """A checkpoint path that torch cannot read, of one `kind`."""
    path = tmp_path / f"{kind}.ckpt"
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(256)}, "hyper_parameters": {}}, good)
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "zero-byte":
        path.touch()
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(1000))
    elif kind == "folder":
        path.mkdir()
    return path  # "missing": never written


@pytest.mark.parametrize("kind", ["truncated", "zero-byte", "random", "folder", "missing"])
@pytest.mark.parametrize("name", COMMANDS)
def test_unreadable_checkpoint_is_one_line(
    name: str, kind: str, tmp_path: Path, prepared_dir: Path
) -> None:
    ckpt = unreadable(kind, tmp_path)
    expected = {"folder": UsageError, "missing": MissingPathError}.get(kind, InputError)
    with pytest.raises(expected) as caught:
        RUN[name](command_config(name, ckpt, tmp_path, prepared_dir))
    message = str(caught.value)
    if kind in ("truncated", "zero-byte", "random"):
        size = ckpt.stat().st_size
        assert message == f"{ckpt}: not a checkpoint, or truncated ({size} bytes); copy it again"
    else:
        assert message.startswith(f"{ckpt}: ") and "ckpt_path=" in message
    assert "weights_only" not in message and "\n" not in message


def test_mixed_good_and_bad_predict_folder(
    tmp_path: Path, write_legacy_checkpoint: Callable[[torch.nn.Module, Path], Path]
) -> None:
    """Every readable image is written; each unreadable one is listed by name, none lost."""
    torch.manual_seed(0)
    ckpt = write_legacy_checkpoint(build_model("vgg11", 1, weights=None), tmp_path / "u.pth")
    write_tiff(tmp_path / "in" / "good.tif", np.zeros((64, 96), np.uint8))
    write_png(tmp_path / "in" / "sub" / "fine.png", np.full((64, 96), 9, np.uint8))
    (tmp_path / "in" / "bad.tif").write_bytes(b"II*\x00 cut short")
    (tmp_path / "in" / "sub" / "empty.jpg").touch()
    overrides = [f"ckpt_path={ckpt}", "encoder=vgg11", "task=binary", "device=cpu"]
    overrides += [f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}"]
    with initialize(version_base="1.3", config_path="../conf"):
        result = predict(compose("predict", overrides=overrides))
    assert sorted(row["image"] for row in result.rows) == ["good.tif", "sub/fine.png"]
    assert sorted(f["image"] for f in result.failures) == ["bad.tif", "sub/empty.jpg"]
    assert (tmp_path / "out" / "sub" / "fine_mask.png").is_file()
    assert "bad.tif" in (tmp_path / "out" / "failures.csv").read_text()


# The command line: one line on stderr, exit status 2 (usage) or 1 (failure)


def run_tool(tool: str, *overrides: str, full_error: bool = False) -> subprocess.CompletedProcess:
    """`python -m neuroseg.<tool> <overrides>` from the repository, stderr and stdout captured."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    command = [sys.executable, "-m", f"neuroseg.{tool}", *overrides]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def stderr_lines(done: subprocess.CompletedProcess) -> list[str]:
    """Non-empty stderr lines, less Python warnings (a library's, not an error report)."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return [line for line in lines if "Warning" not in line and not line.startswith("  ")]


@pytest.mark.parametrize(
    ("tool", "setting"),
    [
        *(pytest.param(tool, "ckpt_path", marks=SLOW) for tool in COMMANDS),
        ("prepare", "raw_dir"),
        ("analyze", "images"),
    ],
)
def test_missing_file_is_one_line_exit_2(tool: str, setting: str, tmp_path: Path) -> None:
    missing = tmp_path / "not here"  # a space: Hydra takes it unquoted
    overrides = [f"{setting}={missing}", f"hydra.run.dir={tmp_path / 'run'}"]
    if tool == "predict":
        write_tiff(tmp_path / "in.tif", np.zeros((64, 96), np.uint8))
        overrides.append(f"input={tmp_path / 'in.tif'}")
    if tool == "prepare":
        overrides.append(f"out_dir={tmp_path / 'prepared'}")
    if tool == "train":
        overrides += ["encoder.weights=null", "trainer=cpu", f"data.dir={tmp_path}"]
    done = run_tool(tool, *overrides)
    lines = stderr_lines(done)
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and str(missing) in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@SLOW
def test_unreadable_checkpoint_command_line(tmp_path: Path) -> None:
    ckpt = unreadable("truncated", tmp_path)
    write_tiff(tmp_path / "in.tif", np.zeros((64, 96), np.uint8))
    done = run_tool(
        "predict", f"ckpt_path={ckpt}", f"input={tmp_path / 'in.tif'}", f"output={tmp_path}"
    )
    size = ckpt.stat().st_size
    assert stderr_lines(done) == [
        f"{ckpt}: not a checkpoint, or truncated ({size} bytes); copy it again"
    ], done.stderr
    assert done.returncode == 1


def test_unknown_setting_is_one_line_exit_2(tmp_path: Path) -> None:
    done = run_tool("synth", "per_condtion=3", f"out_dir={tmp_path / 'raw'}")
    lines = stderr_lines(done)
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "per_condtion" in lines[0] and "+per_condtion=3" in lines[0]
    assert not (tmp_path / "raw").exists()


def test_unset_mandatory_setting_is_one_line_exit_2(tmp_path: Path) -> None:
    done = run_tool("analyze", f"hydra.run.dir={tmp_path}")  # images: ??? left unset
    lines = stderr_lines(done)
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "images" in lines[0], done.stderr


def test_non_ascii_path_needs_quotes(tmp_path: Path) -> None:
    raw = tmp_path / "my plates über"
    done = run_tool("prepare", f"raw_dir={raw}", f"out_dir={tmp_path / 'out'}")
    lines = stderr_lines(done)
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and "raw_dir=\"'/data/my plates'\"" in lines[0], done.stderr
    # Quoted as the README says, the path reaches neuroseg whole: named in the error.
    done = run_tool("prepare", f"raw_dir='{raw}'", f"out_dir={tmp_path / 'out'}")
    assert done.returncode == 2 and stderr_lines(done) == [
        f"{raw}: raw folder not found; set raw_dir to the lab's tree"
    ], done.stderr


def test_full_error_keeps_the_traceback(tmp_path: Path) -> None:
    done = run_tool("analyze", f"images={tmp_path / 'nothing'}", f"hydra.run.dir={tmp_path}",
                    full_error=True)  # fmt: skip
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr
    assert "MissingPathError" in done.stderr and str(tmp_path / "nothing") in done.stderr
