"""Load a trained model for evaluation or prediction from a Lightning or an original checkpoint.

Never needs ImageNet weights: the model is built with random weights, then the checkpoint fills it.
Unpickles tensors and plain containers only, unless the caller trusts the file: unpickling anything
else can run code that the file names.
"""

from __future__ import annotations

import json
import math
import pickletools
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from neuroseg.errors import (
    InputError,
    MissingPathError,
    NeurosegError,
    UnsafeCheckpointError,
    UsageError,
)
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
        raise InputError(
            f'{path}: expected {{"threshold": <0..1>}} ({err}); fix or delete it'
        ) from err
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0 or math.isnan(value):
        raise InputError(f"{path}: threshold {value!r} is not a number in [0, 1]; fix or delete it")
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
    obj = read_checkpoint(path, trusted)
    if is_legacy_checkpoint(obj):
        if encoder is None or task is None:
            raise UsageError(
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
        raise InputError(
            f"{path} is neither a Lightning checkpoint (state_dict + hyper_parameters) nor an "
            "original one (model_state_dict); pass a checkpoint written by train"
        )
    model = build_model(encoder, get_task(task).out_channels, weights=None)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as err:
        raise UsageError(f"{path}: weights do not fit {encoder} with task {task}: {err}") from err
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
    files hold nothing else. A file holding more is refused, never retried unsafely unasked; a
    file torch cannot read at all (cut short, empty, not a checkpoint) gets one line naming it.
    """
    if not isinstance(trusted, bool):  # a string such as "no" would count as true
        raise UsageError(f"trust_checkpoint={trusted!r}; pass true or false")
    check_checkpoint_path(path)
    try:
        # weights_only: tensors, primitives and containers; torch refuses any other global.
        # Without it, unpickling imports and calls whatever the file names: the user vouched.
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as err:  # torch raises many types for a broken file
        names = [] if trusted else unsafe_globals(path)
        if names:
            raise UnsafeCheckpointError(
                f"{path} holds pickled Python objects beyond tensors ({', '.join(names)}); "
                "unpickling them can run code from the file, so it was not loaded. If you trust "
                "its source, pass trust_checkpoint=true (load_checkpoint(..., trusted=True) in "
                "Python)"
            ) from err
        # torch's own message advises weights_only=False, the unsafe retry: not repeated here.
        raise InputError(
            f"{path}: not a checkpoint, or truncated ({path.stat().st_size} bytes); copy it again"
        ) from err


def check_checkpoint_path(path: Path) -> None:
    """Refuse a missing path or a folder with one line each, before torch reads it."""
    hint = "pass ckpt_path=<a .ckpt file written by train, or an original .pth>"
    if path.is_dir():
        raise UsageError(f"{path}: a folder, not a checkpoint file; {hint}")
    if not path.is_file():
        raise MissingPathError(f"{path}: no such checkpoint; {hint}")


def unsafe_globals(path: Path) -> list[str]:
    """Classes and functions named in the file's pickle beyond torch's allow-list, read without
    running them; [] for a file that names none, or that is no pickle at all."""
    if zipfile.is_zipfile(path):
        try:
            return torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except (RuntimeError, ValueError):  # a damaged archive
            return []
    # torch's legacy format and plain pickles: torch's scan reads zip archives only.
    return sorted(set(pickled_globals(path)) - safe_globals())


def safe_globals() -> set[str]:
    """Names torch's weights-only unpickler accepts besides plain containers (`module.name`)."""
    from torch import _weights_only_unpickler  # no public list; the zip scan above uses it too

    return set(_weights_only_unpickler._get_allowed_globals())


def pickled_globals(path: Path) -> Iterator[str]:
    """`module.name` of every global the successive pickles in `path` import, without running
    them (a legacy torch file is several pickles in a row, then raw storage bytes)."""
    with path.open("rb") as stream:
        while True:
            pushed: list[str | None] = []  # what each opcode put on the stack, strings kept
            memo: dict[int, str | None] = {}
            try:
                for opcode, arg, _ in pickletools.genops(stream):
                    if opcode.name == "GLOBAL":
                        yield str(arg).replace(" ", ".")
                    elif opcode.name == "STACK_GLOBAL" and len(pushed) >= 2:
                        yield f"{pushed[-2]}.{pushed[-1]}"
                    elif opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                        index = len(memo) if opcode.name == "MEMOIZE" else int(arg)
                        memo[index] = pushed[-1] if pushed else None
                    elif opcode.name in ("GET", "BINGET", "LONG_BINGET"):
                        pushed.append(memo.get(int(arg)))
                    else:
                        pushed.append(arg if isinstance(arg, str) else None)
            except Exception:  # past the pickles: storage bytes, or a damaged stream
                return


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
        raise InputError(
            f"{path}: hyper_parameters name encoder {saved_encoder!r} and task {saved_task!r}; "
            f"expected an encoder in {sorted(ENCODERS)} and a task; use a checkpoint from train"
        )
    get_task(saved_task)
    for asked, saved, key in ((encoder, saved_encoder, "encoder"), (task, saved_task, "task")):
        if asked is not None and asked != saved:
            raise UsageError(
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
        raise InputError(
            f"{path}: no '{LIGHTNING_PREFIX}*' tensors in state_dict; not a neuroseg checkpoint"
        )
    return model_state


def initial_weights(path: Path, encoder: str, task: str, trusted: bool) -> dict[str, torch.Tensor]:
    """The network state dict of a checkpoint, ours or the original's, to fine-tune from.

    Only the weights are taken (no optimiser, schedule or epoch: that is resuming). A checkpoint
    of another encoder or task than the run's is refused in one line naming both.
    """
    try:
        loaded = load_checkpoint(path, encoder=encoder, task=task, trusted=trusted)
    except ValueError as error:
        kind = type(error) if isinstance(error, NeurosegError) else UsageError
        raise kind(
            f"init_from: {error} (fine-tuning keeps the checkpoint's encoder and task)"
        ) from None
    return loaded.model.state_dict()
