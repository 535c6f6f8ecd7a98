"""A training process killed mid-run (as a pre-empted job is) resumes from last.ckpt to the end."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 4
BATCHES_PER_EPOCH = 3


def train_command(prepared_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    """`python -m neuroseg.train` on the tiny fixture: random weights, 3 small batches per epoch."""
    return [
        sys.executable,
        "-m",
        "neuroseg.train",
        f"data.dir={prepared_dir}",
        "encoder.weights=null",
        "data.crop_hw=[64,96]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        f"trainer.max_epochs={EPOCHS}",
        f"+trainer.limit_train_batches={BATCHES_PER_EPOCH}",
        "+trainer.limit_val_batches=1",
        "+trainer.num_sanity_val_steps=0",
        "logger=csv",
        "test=false",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint at `path`, or None while it is absent or only partly written."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # absent, or cut short mid-save: each fails in its own way
        return None


def kill_after_first_checkpoint(
    process: subprocess.Popen, last: Path, log: Path, timeout_s: float
) -> dict:
    """SIGKILL `process` once `last` holds a whole checkpoint; return that checkpoint.

    The process is frozen (SIGSTOP) while the file is read, so a save that is under way cannot
    be mistaken for a finished one, nor finish behind our back.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if last.exists():
            os.kill(process.pid, signal.SIGSTOP)
            checkpoint = load_checkpoint(last)
            if checkpoint is not None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return checkpoint
            os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.05)
    process.kill()
    process.wait()
    output = log.read_text()[-3000:]
    raise AssertionError(f"no whole {last} before the run ended or timed out:\n{output}")


def logged_epochs(run_dir: Path) -> set[int]:
    """Epoch numbers in the run's CSV log (csv/version_*/metrics.csv)."""
    epochs = set()
    for path in run_dir.glob("csv/version_*/metrics.csv"):
        with path.open(newline="") as handle:
            epochs |= {int(float(row["epoch"])) for row in csv.DictReader(handle) if row["epoch"]}
    return epochs


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(prepared_dir: Path, tmp_path: Path) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "resumed"
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    log = tmp_path / "first.log"
    with log.open("w") as handle:  # a file, not a pipe: a full pipe would stall the run
        process = subprocess.Popen(
            train_command(prepared_dir, first_dir),
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        last = first_dir / "checkpoints" / "last.ckpt"
        # Generous limits: the run takes ~20 s alone, but test suites may share the machine.
        killed = kill_after_first_checkpoint(process, last, log, timeout_s=600)
    assert process.returncode == -signal.SIGKILL
    assert killed["epoch"] < EPOCHS - 1, "the run ended before it could be killed mid-way"

    resumed = subprocess.run(
        train_command(prepared_dir, second_dir, f"ckpt_path={last}"),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    final = torch.load(second_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["epoch"] == EPOCHS - 1
    assert final["global_step"] == EPOCHS * BATCHES_PER_EPOCH
    # It went on from the killed run's epoch rather than starting again at 0.
    assert logged_epochs(second_dir) == set(range(killed["epoch"] + 1, EPOCHS))
