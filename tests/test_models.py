"""UNet11/UNet16: shapes, gradients, exact parameter counts, layer names, input checks, config."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize

from neuroseg.models.ternausnet import ENCODERS, UNet11, UNet16, build_model

# Counted by hand from the original's layer list (docs/legacy-checkpoints.md); 1 class.
PARAMS_ONE_CLASS = {"vgg11": 25_364_513, "vgg16": 32_202_337}


@pytest.fixture(scope="module")
def models() -> dict[tuple[str, int], torch.nn.Module]:
    torch.manual_seed(0)
    return {(name, c): build_model(name, c) for name in ENCODERS for c in (1, 3)}


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_forward_backward(models: dict, name: str, num_classes: int) -> None:
    model = models[name, num_classes]
    model.zero_grad()
    x = torch.rand(1, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (1, num_classes, 64, 64)
    assert logits.dtype == torch.float32
    logits.mean().backward()
    for param in ("encoder.0.weight", "dec1.conv.weight", "final.weight"):
        grad = model.get_parameter(param).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, param


def test_non_square_batch_shape(models: dict) -> None:
    logits = models["vgg11", 3](torch.rand(2, 3, 64, 96))
    assert logits.shape == (2, 3, 64, 96)


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_parameter_count_matches_the_original(models: dict, name: str, num_classes: int) -> None:
    extra = 33 * (num_classes - 1)  # final 1x1 conv: 32 weights + 1 bias per class
    params = sum(p.numel() for p in models[name, num_classes].parameters())
    assert params == PARAMS_ONE_CLASS[name] + extra
    # The rounded totals of the original's report: 25.36 M (UNet11) and 32.20 M (UNet16).
    assert round(params / 1e6, 2) == {"vgg11": 25.36, "vgg16": 32.20}[name]


@pytest.mark.parametrize(("name", "convs"), [("vgg11", 8), ("vgg16", 13)])
def test_state_dict_has_no_duplicates(models: dict, name: str, convs: int) -> None:
    keys = list(models[name, 1].state_dict())
    assert not [key for key in keys if key.startswith("conv")]
    assert len([key for key in keys if key.startswith("encoder.")]) == 2 * convs
    assert keys[-2:] == ["final.weight", "final.bias"]
    # 4 per decoder block (centre, dec5..dec2), 2 for dec1, 2 for final.
    assert len(keys) == 2 * convs + 5 * 4 + 2 + 2


def test_decoder_channels_unet11(models: dict) -> None:
    """Channel numbers as the original lists them (ConvTranspose2d weight is in, out, k, k)."""
    state = models["vgg11", 1].state_dict()
    assert state["center.block.0.conv.weight"].shape == (512, 512, 3, 3)
    assert state["center.block.1.weight"].shape == (512, 256, 4, 4)
    assert state["dec5.block.0.conv.weight"].shape == (512, 768, 3, 3)
    assert state["dec4.block.1.weight"].shape == (512, 128, 4, 4)
    assert state["dec3.block.0.conv.weight"].shape == (256, 384, 3, 3)
    assert state["dec2.block.0.conv.weight"].shape == (128, 192, 3, 3)
    assert state["dec2.block.1.weight"].shape == (128, 32, 4, 4)
    assert state["dec1.conv.weight"].shape == (32, 96, 3, 3)
    assert state["final.weight"].shape == (1, 32, 1, 1)


def test_decoder_channels_unet16(models: dict) -> None:
    state = models["vgg16", 3].state_dict()
    assert state["center.block.0.conv.weight"].shape == (512, 512, 3, 3)
    assert state["dec4.block.0.conv.weight"].shape == (512, 768, 3, 3)
    assert state["dec4.block.1.weight"].shape == (512, 256, 4, 4)
    assert state["dec3.block.0.conv.weight"].shape == (256, 512, 3, 3)
    assert state["dec2.block.0.conv.weight"].shape == (128, 192, 3, 3)
    assert state["dec1.conv.weight"].shape == (32, 96, 3, 3)
    assert state["final.weight"].shape == (3, 32, 1, 1)


def test_encoder_keeps_torchvision_indices(models: dict) -> None:
    conv_indices = {
        "vgg11": [0, 3, 6, 8, 11, 13, 16, 18],
        "vgg16": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
    }
    for name, indices in conv_indices.items():
        keys = [k for k in models[name, 1].state_dict() if k.startswith("encoder.")]
        assert keys == [f"encoder.{i}.{p}" for i in indices for p in ("weight", "bias")]


@pytest.mark.parametrize(("name", "unet", "convs"), [("vgg11", UNet11, 8), ("vgg16", UNet16, 13)])
def test_build_model_builds_the_named_unet(name: str, unet: type, convs: int) -> None:
    model = build_model(name, 1)
    assert type(model) is unet
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.encoder) == convs


@pytest.mark.parametrize("size", [(100, 96), (64, 80), (33, 64)])
def test_size_not_multiple_of_32(models: dict, size: tuple[int, int]) -> None:
    height, width = size
    with pytest.raises(ValueError, match=f"input {height}x{width}: .*multiples of 32.*pad"):
        models["vgg11", 1](torch.rand(1, 3, height, width))


def test_wrong_channel_count(models: dict) -> None:
    with pytest.raises(ValueError, match=r"\(1, 1, 64, 64\).*\(N, 3, H, W\)"):
        models["vgg11", 1](torch.rand(1, 1, 64, 64))


def test_unknown_encoder_lists_choices() -> None:
    with pytest.raises(KeyError, match=r"resnet34.*\['vgg11', 'vgg16'\]"):
        build_model("resnet34", 1)


def test_zero_classes_rejected() -> None:
    with pytest.raises(ValueError, match="num_classes=0"):
        UNet11(num_classes=0)


@pytest.mark.parametrize("name", ["vgg11", "vgg16"])
def test_composed_encoder_config_builds_the_named_unet(name: str) -> None:
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("train", overrides=[f"encoder={name}", "encoder.weights=null"])
    model = build_model(**cfg.encoder, num_classes=1)
    assert type(model) is ENCODERS[name] and model.encoder[0].weight.shape == (64, 3, 3, 3)
