"""Load a trained model for evaluation or prediction from a Lightning or an original checkpoint.

Never needs ImageNet weights: the model is built with random weights, then the checkpoint fills it.
Unpickles tensors and plain containers only, unless the caller trusts the file: unpickling anything
else can run code that the file names.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from neuroseg.models.legacy import (
    convert_legacy_state_dict,
    is_legacy_checkpoint,
    legacy_model_state,
)
from neuroseg.models.ternausnet import ENCODERS, build_model
from neuroseg.task import get_task

# Lightning stores the network under the LightningModule's `model` attribute.
LIGHTNING_PREFIX = "model."


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference (eval mode, CPU) and what it was trained for."""

    model: nn.Module
    encoder: str
    task: str
    threshold: float | None
    source: Literal["lightning", "legacy"]


def threshold_path(checkpoint_path: Path) -> Path:
    """Sidecar holding the tuned binary threshold: `<checkpoint>.threshold.json`."""
    return checkpoint_path.with_name(f"{checkpoint_path.name}.threshold.json")


def read_threshold(path: Path) -> float | None:
    """The `{"threshold": x}` value of a sidecar file, x in [0, 1]; None when the file is absent."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())["threshold"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(
            f'{path}: expected {{"threshold": <0..1>}} ({err}); fix or delete it'
        ) from err
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"{path}: threshold {value!r} is not a number in [0, 1]; fix or delete it")
    return float(value)


def load_checkpoint(
    path: str | Path,
    encoder: str | None = None,
    task: str | None = None,
    trusted: bool = False,
) -> LoadedModel:
    """Model, encoder, task and threshold from a Lightning `.ckpt` or an original `.pth` file.

    A Lightning checkpoint names its encoder and task (`encoder`/`task` must agree if given); a
    legacy one does not, so both are required. A `<checkpoint>.threshold.json` sidecar overrides
    the threshold saved in the checkpoint. `trusted` allows pickled Python objects beyond tensors
    (see `read_checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such checkpoint; pass the path of a .ckpt or .pth file"
        )
    obj = read_checkpoint(path, trusted)
    if is_legacy_checkpoint(obj):
        if encoder is None or task is None:
            raise ValueError(
                f"{path} is a legacy checkpoint; pass encoder=vgg11|vgg16 and task=binary|axons"
            )
        out_channels = get_task(task).out_channels
        state_dict = convert_legacy_state_dict(
            legacy_model_state(obj), encoder, out_channels, source=path
        )
        source, saved_threshold = "legacy", None
    elif isinstance(obj, Mapping) and "state_dict" in obj and "hyper_parameters" in obj:
        encoder, task = lightning_names(obj["hyper_parameters"], path, encoder, task)
        state_dict = lightning_model_state(obj["state_dict"], path)
        source, saved_threshold = "lightning", obj["hyper_parameters"].get("threshold")
    else:
        raise ValueError(
            f"{path} is neither a Lightning checkpoint (state_dict + hyper_parameters) nor an "
            "original one (model_state_dict); pass a checkpoint written by train"
        )
    model = build_model(encoder, get_task(task).out_channels, weights=None)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit {encoder} with task {task}: {err}") from err
    sidecar = read_threshold(threshold_path(path))
    threshold = sidecar if sidecar is not None else saved_threshold
    return LoadedModel(
        model=model.eval(),
        encoder=encoder,
        task=task,
        threshold=None if threshold is None else float(threshold),
        source=source,
    )


def read_checkpoint(path: Path, trusted: bool) -> object:
    """The unpickled file: only tensors and plain containers unless `trusted`.

    Checkpoints from train (hyper-parameters saved as plain dicts) and the original's `.pth`
    files hold nothing else. A file holding more is refused, never retried unsafely unasked.
    """
    if not isinstance(trusted, bool):  # a string such as "no" would count as true
        raise ValueError(f"trust_checkpoint={trusted!r}; pass true or false")
    if trusted:
        # Full unpickling imports and calls whatever the file names: the user vouched for it.
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        # weights_only: tensors, primitives and containers; torch refuses any other global.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        names = unsafe_globals(path)
        if not names:
            raise ValueError(
                f"{path} could not be read as a checkpoint ({err}); pass a .ckpt written by "
                "train or an original .pth"
            ) from err
        raise ValueError(
            f"{path} holds pickled Python objects beyond tensors ({', '.join(names)}); "
            "unpickling them can run code from the file, so it was not loaded. If you trust its "
            "source, pass trust_checkpoint=true (load_checkpoint(..., trusted=True) in Python)"
        ) from err


def unsafe_globals(path: Path) -> list[str]:
    """Classes and functions named in the file's pickle beyond torch's allow-list, read without
    running them; [] for a file that is no torch.save zip archive."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (RuntimeError, ValueError):
        return []


def lightning_names(
    hparams: Mapping, path: Path, encoder: str | None, task: str | None
) -> tuple[str, str]:
    """(encoder, task) names saved in Lightning hyper-parameters, checked against the caller's."""
    # SegmentationModule has always saved encoder as build_model's keys and task as its name.
    saved_encoder = hparams.get("encoder")
    saved_task = hparams.get("task")
    if isinstance(saved_encoder, Mapping):
        saved_encoder = saved_encoder.get("name")
    if saved_encoder not in ENCODERS or not isinstance(saved_task, str):
        raise ValueError(
            f"{path}: hyper_parameters name encoder {saved_encoder!r} and task {saved_task!r}; "
            f"expected an encoder in {sorted(ENCODERS)} and a task; use a checkpoint from train"
        )
    get_task(saved_task)
    for asked, saved, key in ((encoder, saved_encoder, "encoder"), (task, saved_task, "task")):
        if asked is not None and asked != saved:
            raise ValueError(
                f"{path} holds {key}={saved} but {key}={asked} was asked; drop or fix it"
            )
    return saved_encoder, saved_task


def lightning_model_state(state_dict: Mapping[str, torch.Tensor], path: Path) -> dict:
    """The network's tensors of a LightningModule state dict, without the `model.` prefix."""
    model_state = {
        key.removeprefix(LIGHTNING_PREFIX): value
        for key, value in state_dict.items()
        if key.startswith(LIGHTNING_PREFIX)
    }
    if not model_state:
        raise ValueError(
            f"{path}: no '{LIGHTNING_PREFIX}*' tensors in state_dict; not a neuroseg checkpoint"
        )
    return model_state
