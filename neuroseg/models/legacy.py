"""The original project's checkpoints <-> our state dicts.

Its file is `torch.save({"epoch", "model_state_dict", "optimizer_state_dict"})`; the model state
holds every VGG conv twice, as `encoder.<i>.*` and as `conv<k>.<j>.*` (56 tensors for UNet11, 76
for UNet16). We keep the `encoder.*` copy and check that the duplicates agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from neuroseg.errors import ChoiceError, InputError
from neuroseg.models.ternausnet import ENCODERS, TernausNet

# The original names the model by its class; `ENCODERS` by the encoder.
NETWORK_NAMES = {"vgg11": "UNet11", "vgg16": "UNet16"}


def is_legacy_checkpoint(obj: object) -> bool:
    """True for the original's checkpoint dict, or a bare state dict in its layout."""
    if not isinstance(obj, Mapping):
        return False
    if isinstance(obj.get("model_state_dict"), Mapping):
        return True
    return "conv1.0.weight" in obj and "encoder.0.weight" in obj


def legacy_model_state(obj: Mapping) -> Mapping[str, torch.Tensor]:
    """The model state dict inside a legacy checkpoint (or the bare state dict itself)."""
    state = obj.get("model_state_dict", obj)
    # A model trained under nn.DataParallel saves every key with a `module.` prefix.
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def legacy_aliases(model: TernausNet) -> dict[str, str]:
    """Original alias module name -> encoder module name, e.g. {"conv3.2": "encoder.8", ...}.

    The original's `conv<k>` was nn.Sequential(conv, relu, conv, relu, ...) over stage k's convs,
    so its j-th conv sits at index 2*j.
    """
    aliases = {}
    for stage, (start, stop) in enumerate(model.stages, start=1):
        convs = [i for i in range(start, stop) if isinstance(model.encoder[i], nn.Conv2d)]
        for j, index in enumerate(convs):
            aliases[f"conv{stage}.{2 * j}"] = f"encoder.{index}"
    return aliases


def legacy_state_dict(model: TernausNet) -> dict[str, torch.Tensor]:
    """Our model's state in the original layout (encoder, conv1..conv5 duplicates, decoder).

    The duplicates share storage with the encoder tensors, as in the original.
    """
    ours = model.state_dict()
    encoder = {key: value for key, value in ours.items() if key.startswith("encoder.")}
    duplicates = {
        f"{alias}.{param}": ours[f"{target}.{param}"]
        for alias, target in legacy_aliases(model).items()
        for param in ("weight", "bias")
    }
    rest = {key: value for key, value in ours.items() if not key.startswith("encoder.")}
    return {**encoder, **duplicates, **rest}


def legacy_layout(encoder: str, num_classes: int) -> dict[str, torch.Size]:
    """Tensor name -> shape of the original's state dict for this model (built on `meta`: free)."""
    with torch.device("meta"):
        model = ENCODERS[encoder](num_classes)
    return {key: value.shape for key, value in legacy_state_dict(model).items()}


def identify_legacy(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, int] | None:
    """(encoder, output classes) whose original layout `state_dict` matches exactly, or None."""
    final = state_dict.get("final.weight")
    if not isinstance(final, torch.Tensor) or final.ndim != 4:
        return None
    num_classes = final.shape[0]
    for encoder in ENCODERS:
        layout = legacy_layout(encoder, num_classes)
        if set(layout) == set(state_dict) and all(
            state_dict[key].shape == shape for key, shape in layout.items()
        ):
            return encoder, num_classes
    return None


def describe_model(encoder: str, num_classes: int) -> str:
    """Human wording of a model, e.g. 'a UNet16 with 3 classes'."""
    plural = "class" if num_classes == 1 else "classes"
    return f"a {NETWORK_NAMES[encoder]} with {num_classes} {plural}"


def convert_legacy_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    encoder: str,
    num_classes: int,
    source: str | Path = "legacy state dict",
) -> dict[str, torch.Tensor]:
    """Our state dict from the original's `model_state_dict`, after checking it is the asked model.

    Raises ValueError, naming `source` and what it holds, for a foreign layout, another encoder,
    another class count, or duplicate tensors that disagree with the encoder's.
    """
    if encoder not in ENCODERS:
        raise ChoiceError(f"unknown encoder {encoder!r}; choose one of {sorted(ENCODERS)}")
    held = identify_legacy(state_dict)
    if held is None:
        keys = ", ".join(list(state_dict)[:5]) or "nothing"
        raise InputError(
            f"{source} holds no UNet11/UNet16 in the original layout (keys: {keys}, ...); "
            "expected encoder.*, conv1..conv5, center, dec5..dec1 and final tensors"
        )
    if held != (encoder, num_classes):
        raise InputError(
            f"{source} holds {describe_model(*held)}, not {describe_model(encoder, num_classes)}; "
            f"pass encoder={held[0]} and the task with {held[1]} output channel(s) "
            "(binary: 1, axons: 3)"
        )
    with torch.device("meta"):
        model = ENCODERS[encoder](num_classes)
    for alias, target in legacy_aliases(model).items():
        for param in ("weight", "bias"):
            if not torch.equal(state_dict[f"{alias}.{param}"], state_dict[f"{target}.{param}"]):
                raise InputError(
                    f"{source}: {alias}.{param} differs from {target}.{param}, which the original "
                    "saved as one tensor; the file was edited, re-export it from the original model"
                )
    return {key: state_dict[key] for key in model.state_dict()}
