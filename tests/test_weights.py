"""Encoder weights through torchvision's real cache path, local files, and the offline errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

from neuroseg.models.ternausnet import build_model, vgg_features
from neuroseg.models.weights import WeightsUnavailableError, imagenet_cache_file

CACHE_NAMES = {"vgg11": "vgg11-8a719046.pth", "vgg16": "vgg16-397923af.pth"}
CONFIGS = {"vgg11": "A", "vgg16": "D"}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """An empty TORCH_HOME and no network: a download attempt fails at once and is recorded."""
    attempts: list[str] = []

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        attempts.append(url)
        raise URLError("no network in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return attempts


def known_features(name: str) -> dict[str, torch.Tensor]:
    """VGG features tensors with values unlike any init: tensor k is filled with k + 0.5."""
    shapes = vgg_features(CONFIGS[name]).state_dict()
    return {key: torch.full_like(value, k + 0.5) for k, (key, value) in enumerate(shapes.items())}


def full_vgg_state(name: str) -> dict[str, torch.Tensor]:
    """A torchvision-style VGG state dict: features plus a (tiny stand-in) classifier."""
    state = {f"features.{key}": value for key, value in known_features(name).items()}
    state["classifier.0.weight"] = torch.zeros(4, 8)
    state["classifier.0.bias"] = torch.zeros(4)
    return state


def assert_encoder_holds(model: torch.nn.Module, name: str) -> None:
    encoder = model.encoder.state_dict()
    expected = known_features(name)
    assert list(encoder) == list(expected)
    assert all(torch.equal(encoder[key], expected[key]) for key in expected)


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
def test_cache_file_is_torchvision_path(tmp_path: Path, name: str) -> None:
    assert (
        imagenet_cache_file(name) == tmp_path / "torch" / "hub" / "checkpoints" / CACHE_NAMES[name]
    )


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
def test_imagenet_from_torchvision_cache(tmp_path: Path, offline: list[str], name: str) -> None:
    cache_file = tmp_path / "torch" / "hub" / "checkpoints" / CACHE_NAMES[name]
    cache_file.parent.mkdir(parents=True)
    torch.save(full_vgg_state(name), cache_file)
    model = build_model(name, 1, weights="imagenet")
    assert_encoder_holds(model, name)
    assert offline == []  # served from the cache, no download tried


def test_imagenet_offline_names_cache_file_and_alternatives(offline: list[str]) -> None:
    with pytest.raises(RuntimeError, match="vgg11-8a719046.pth") as info:
        build_model("vgg11", 1, weights="imagenet")
    message = str(info.value)
    assert str(imagenet_cache_file("vgg11")) in message
    assert "encoder.weights=/path/to/vgg11-8a719046.pth" in message
    assert "encoder.weights=null" in message
    assert isinstance(info.value, WeightsUnavailableError)
    assert offline == ["https://download.pytorch.org/models/vgg11-8a719046.pth"]


def test_offline_fallback_warns_once_and_keeps_random_weights() -> None:
    torch.manual_seed(0)
    random_encoder = build_model("vgg16", 1).encoder.state_dict()
    torch.manual_seed(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_model("vgg16", 1, weights="imagenet", offline_fallback=True)
    assert len(caught) == 1
    assert "vgg16-397923af.pth" in str(caught[0].message)
    assert "random encoder weights" in str(caught[0].message)
    encoder = model.encoder.state_dict()
    assert all(torch.equal(encoder[key], random_encoder[key]) for key in encoder)


def test_corrupt_cache_file_is_not_hidden_by_fallback(tmp_path: Path) -> None:
    cache_file = tmp_path / "torch" / "hub" / "checkpoints" / CACHE_NAMES["vgg11"]
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"not a torch file")
    with pytest.raises(Exception) as info:  # noqa: B017 (torch's own unpickling error)
        build_model("vgg11", 1, weights="imagenet", offline_fallback=True)
    assert not isinstance(info.value, WeightsUnavailableError)


@pytest.mark.parametrize("features_only", [False, True])
def test_local_vgg_file(tmp_path: Path, features_only: bool) -> None:
    path = tmp_path / "my_vgg11.pth"
    torch.save(known_features("vgg11") if features_only else full_vgg_state("vgg11"), path)
    assert_encoder_holds(build_model("vgg11", 3, weights=path), "vgg11")
    assert_encoder_holds(build_model("vgg11", 3, weights=str(path)), "vgg11")


def test_local_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "absent_vgg.pth"
    with pytest.raises(FileNotFoundError, match="absent_vgg.pth.*encoder.weights=null"):
        build_model("vgg11", 1, weights=path)


def test_misspelled_imagenet_is_a_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="imagnet.*encoder.weights=imagenet"):
        build_model("vgg11", 1, weights="imagnet")


def test_local_file_of_other_encoder(tmp_path: Path) -> None:
    path = tmp_path / "vgg16_weights.pth"
    torch.save(full_vgg_state("vgg16"), path)
    with pytest.raises(
        ValueError,
        match=r"vgg16_weights.pth: holds vgg16 weights, not vgg11.*unexpected 24 \(2.weight",
    ):
        build_model("vgg11", 1, weights=path)


def test_local_file_with_wrong_shapes(tmp_path: Path) -> None:
    path = tmp_path / "odd.pth"
    state = full_vgg_state("vgg11")
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"odd.pth: .*0.weight is \(64, 1, 3, 3\)"):
        build_model("vgg11", 1, weights=path)


def test_local_file_without_vgg_features(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="resnet.pth: no VGG features tensors"):
        build_model("vgg11", 1, weights=path)


def test_local_file_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="tensor.pth: holds a Tensor"):
        build_model("vgg11", 1, weights=path)


def test_no_weights_leaves_init_untouched(offline: list[str]) -> None:
    torch.manual_seed(1)
    first = build_model("vgg11", 1, weights=None).encoder.state_dict()
    torch.manual_seed(1)
    second = build_model("vgg11", 1).encoder.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert offline == []
