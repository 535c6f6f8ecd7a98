"""Encoder weights: torchvision's ImageNet VGG (through its download cache) or a local .pth file.

Only the VGG `features.*` tensors are used; the encoder keeps torchvision's indices, so they load
one to one. The classifier tensors of a full VGG state dict are ignored on purpose.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from http.client import HTTPException
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import VGG11_Weights, VGG16_Weights, WeightsEnum

from neuroseg.errors import InputError, MissingPathError


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are neither cached nor downloadable (offline machine)."""


IMAGENET: dict[str, WeightsEnum] = {
    "vgg11": VGG11_Weights.IMAGENET1K_V1,
    "vgg16": VGG16_Weights.IMAGENET1K_V1,
}


def imagenet_cache_file(name: str) -> Path:
    """Where torchvision caches (and looks for) the ImageNet weights of encoder `name`.

    `$TORCH_HOME/hub/checkpoints/<file>`, e.g. `~/.cache/torch/hub/checkpoints/vgg11-8a719046.pth`.
    """
    url = IMAGENET[name].url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def features_state_dict(
    state_dict: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """The VGG `features` tensors keyed by torchvision index (`0.weight`, ...).

    Accepts a full torchvision VGG state dict (`features.N.*` and `classifier.*`) or a
    features-only one (`N.*`, as `vgg.features.state_dict()` writes).
    """
    features = {
        key.removeprefix("features."): value
        for key, value in state_dict.items()
        if key.startswith("features.")
    }
    if features:
        return features
    if state_dict and all(key.split(".", 1)[0].isdigit() for key in state_dict):
        return dict(state_dict)
    first = ", ".join(list(state_dict)[:4]) or "nothing"
    raise InputError(
        f"{source}: no VGG features tensors (keys start with {first}); expected a torchvision VGG "
        "state dict with features.N.weight keys"
    )


def read_imagenet_features(name: str) -> dict[str, torch.Tensor]:
    """ImageNet VGG features through torchvision's own path (cache first, then download).

    Raises WeightsUnavailableError (a RuntimeError) naming the cache file and both alternatives
    when the file is absent and the download fails (no internet).
    """
    cache_file = imagenet_cache_file(name)
    cached = cache_file.is_file()
    try:
        state_dict = IMAGENET[name].get_state_dict(
            progress=False, check_hash=True, map_location="cpu", weights_only=True
        )
    except (OSError, HTTPException) as err:
        if cached:
            raise
        raise WeightsUnavailableError(
            f"cannot download ImageNet {name} weights ({err}); copy the file to {cache_file} "
            f"(or set TORCH_HOME), or pass encoder.weights=/path/to/{cache_file.name}, "
            "or train from random weights with encoder.weights=null"
        ) from err
    return features_state_dict(state_dict, str(cache_file))


def read_local_features(path: Path) -> dict[str, torch.Tensor]:
    """VGG features from a local torchvision VGG .pth file (full or features-only)."""
    if not path.is_file():
        raise MissingPathError(
            f"encoder.weights={path}: no such file; pass a torchvision VGG .pth file, "
            "encoder.weights=imagenet, or encoder.weights=null"
        )
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, Mapping):
        raise InputError(f"{path}: holds a {type(state_dict).__name__}, not a VGG state dict")
    return features_state_dict(state_dict, str(path))


def check_fits(
    encoder: nn.Module, features: Mapping[str, torch.Tensor], name: str, source: str
) -> None:
    """Raise ValueError unless `features` has exactly the encoder's tensors and shapes.

    The message says which VGG the file holds when it is the other one, and lists the rest.
    """
    expected = encoder.state_dict()
    missing = [key for key in expected if key not in features]
    unexpected = [key for key in features if key not in expected]
    mis_shaped = [
        f"{key} is {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
        for key, value in features.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if not (missing or unexpected or mis_shaped):
        return
    convs = sum(1 for key, value in features.items() if key.endswith(".weight") and value.ndim == 4)
    held = {8: "vgg11", 13: "vgg16"}.get(convs)
    holds = f"holds {held} weights, " if held and held != name else ""
    problems = [
        f"{label} {len(keys)} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", mis_shaped),
        )
        if keys
    ]
    raise InputError(
        f"{source}: {holds}not {name} weights: {'; '.join(problems)}; "
        f"pass a torchvision {name} file or choose the encoder that matches it"
    )


def load_encoder_weights(
    encoder: nn.Module,
    name: str,
    weights: str | Path | None,
    offline_fallback: bool = False,
) -> None:
    """Fill `encoder` (a VGG `features`) in place from "imagenet", a .pth path, or keep it (None).

    `offline_fallback` (demo only): when ImageNet weights can be neither found nor downloaded,
    warn once and keep the random weights instead of raising.
    """
    if weights is None:
        return
    if weights == "imagenet":
        source = str(imagenet_cache_file(name))
        try:
            features = read_imagenet_features(name)
        except WeightsUnavailableError as err:
            if not offline_fallback:
                raise
            warnings.warn(f"{err}; continuing from random encoder weights", stacklevel=3)
            return
    else:
        source = str(weights)
        features = read_local_features(Path(weights))
    check_fits(encoder, features, name, source)
    encoder.load_state_dict(features)
