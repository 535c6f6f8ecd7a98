"""Where a run starts: afresh, from a trained model's weights (init_from), or resuming a checkpoint.

Lightning finds the checkpoint itself for its own `ckpt_path` values: "last" (the newest
`last*.ckpt` of this run's ModelCheckpoint callbacks, or a fresh start when there is none) and
"hpc" (the checkpoint a SLURM requeue saved). neuroseg adds only what Lightning does not: a
guard against resuming a checkpoint of another encoder or task (the run is composed afresh from
the command line, so forgotten overrides would fail later on tensor shapes), and `auto`, the
name requeued jobs have always used for Lightning's "last".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch

from neuroseg.errors import InputError, MissingPathError, UsageError
from neuroseg.models.checkpoint import (
    check_checkpoint_path,
    initial_weights,
    lightning_names,
    read_checkpoint,
)

LAST = "last"  # this run's last checkpoint; refused when there is none (a mistyped run folder)
AUTO = "auto"  # Lightning's "last" as it is: a requeued job resumes, its first start starts afresh
HPC = "hpc"  # Lightning's: the checkpoint SLURM's requeue signal made Lightning save
LIGHTNING_VALUES = {LAST: "last", AUTO: "last", HPC: "hpc"}


def fine_tune_weights(
    init_from: str | None, ckpt_path: str | None, encoder: str, task: str, trusted: bool
) -> dict[str, torch.Tensor] | None:
    """The network weights of `init_from` (ours or legacy), checked against the run's encoder and
    task before any data is read; None without init_from.

    ckpt_path=auto may go with it (a requeued fine-tuning job resumes its own last.ckpt once it
    exists); any other ckpt_path resumes a run, which contradicts starting from other weights.
    """
    if init_from is None:
        return None
    if ckpt_path not in (None, AUTO):
        raise UsageError(
            f"init_from={init_from} and ckpt_path={ckpt_path}: pass init_from to fine-tune "
            "from a model's weights, or ckpt_path to resume a run, not both"
        )
    return initial_weights(Path(init_from), encoder, task, trusted)


def check_named_resume(ckpt_path: str | None, encoder: str, task: str, trusted: bool) -> None:
    """Check a checkpoint named by path before any setup: a wrong file costs a second and one
    line. Lightning's own values (and None) are resolved and guarded when Lightning loads them."""
    if ckpt_path is None or ckpt_path in LIGHTNING_VALUES:
        return
    path = Path(ckpt_path)
    saved = read_checkpoint(path, trusted)
    if not isinstance(saved, Mapping) or "hyper_parameters" not in saved:
        raise InputError(f"ckpt_path={path} is not a checkpoint written by train; resume from one")
    check_same_network(saved["hyper_parameters"], path, encoder, task)


def fit_ckpt_path(ckpt_path: str | None, trainer: pl.Trainer) -> str | None:
    """The `ckpt_path` to hand Trainer.fit: a checked file, or Lightning's "last" or "hpc".

    `last` must find this run's checkpoints/last.ckpt: continuing a run that is not there (a
    mistyped hydra.run.dir) fails instead of silently starting afresh, as `auto` would.
    """
    if ckpt_path is None:
        return None
    if ckpt_path not in LIGHTNING_VALUES:
        check_checkpoint_path(Path(ckpt_path))  # a missing file or a folder: one line each
        return ckpt_path
    if ckpt_path == LAST:
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        last = Path(folder or trainer.default_root_dir) / "last.ckpt"
        if not last.is_file():
            raise MissingPathError(
                f"ckpt_path=last: {last} does not exist; give hydra.run.dir=<the run's folder> "
                "to continue a run, ckpt_path=<a .ckpt file>, or ckpt_path=auto to start afresh "
                "when there is none"
            )
    return LIGHTNING_VALUES[ckpt_path]


def check_same_network(hparams: Mapping, path: Path, encoder: str, task: str) -> None:
    """Refuse a checkpoint's hyper-parameters of another encoder or task, naming the fix.

    A resumed run is composed afresh from the command line, so it must repeat the first run's
    overrides; the error names the file that lists them.
    """
    try:
        lightning_names(hparams, path, encoder, task)
    except ValueError as error:
        overrides = path.parent.parent / ".hydra" / "overrides.yaml"
        raise UsageError(
            f"{error}. A resumed run must repeat the first run's overrides (listed in "
            f"{overrides}), e.g. python -m neuroseg.train encoder=<...> task=<...> ckpt_path=..."
        ) from None
