"""TernausNet U-Nets (arXiv 1801.05746): a torchvision VGG encoder under a transposed-conv decoder.

Layer names and channel numbers follow the original project's UNet11/UNet16 so that its trained
checkpoints and torchvision's ImageNet VGG weights load without renaming (see `models/legacy.py`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from neuroseg.errors import ChoiceError, UsageError
from neuroseg.models.weights import load_encoder_weights

# Inputs pass five 2x poolings before the centre block, so both sides must divide by 2**5.
SIZE_MULTIPLE = 32


class ConvRelu(nn.Module):
    """3x3 convolution (same padding) then ReLU; keeps the original's `conv` submodule name."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(x))


class DecoderBlock(nn.Module):
    """ConvRelu then a stride-2 transposed conv (k=4, p=1) + ReLU: doubles H and W exactly."""

    def __init__(self, in_channels: int, middle_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            ConvRelu(in_channels, middle_channels),
            nn.ConvTranspose2d(middle_channels, out_channels, kernel_size=4, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def vgg_features(config: str) -> nn.Sequential:
    """torchvision's VGG `features` (same indices and init) without building the unused classifier.

    `config` is torchvision's key: "A" = VGG11, "D" = VGG16.
    """
    features = make_layers(cfgs[config], batch_norm=False)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(layer.bias, 0)
    return features


def encoder_stages(features: nn.Sequential) -> tuple[tuple[int, int], ...]:
    """(start, stop) index ranges of the five skip stages in `features`; each ends before a pool.

    Stage k is the original's `conv{k}`; the pool that precedes it belongs to the stage, the
    last pool (before the centre block) to none.
    """
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    starts = [0, *pools[:-1]]
    return tuple(zip(starts, pools, strict=True))


class TernausNet(nn.Module):
    """U-Net with a VGG encoder: (N, 3, H, W) float, ImageNet-normalised -> logits (N, C, H, W).

    Logits, not the original's log-softmax: argmax and softmax are unchanged, and the loss
    chooses its own activation. H and W must be multiples of 32.
    """

    def __init__(
        self,
        features: nn.Sequential,
        middle_channels: tuple[int, int, int, int, int],
        out_channels: tuple[int, int, int, int, int],
        num_classes: int,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise UsageError(f"num_classes={num_classes}; use 1 (binary) or 3 (axons)")
        self.num_classes = num_classes
        self.encoder = features
        # Plain tuples, not modules: the stages are views of `encoder`, so each VGG layer is
        # registered once (the original also registered them as conv1..conv5).
        self.stages = encoder_stages(features)
        skip = [_out_channels(features[start:stop]) for start, stop in self.stages]
        mid, out = middle_channels, out_channels
        self.center = DecoderBlock(skip[4], mid[0], out[0])
        self.dec5 = DecoderBlock(skip[4] + out[0], mid[1], out[1])
        self.dec4 = DecoderBlock(skip[3] + out[1], mid[2], out[2])
        self.dec3 = DecoderBlock(skip[2] + out[2], mid[3], out[3])
        self.dec2 = DecoderBlock(skip[1] + out[3], mid[4], out[4])
        self.dec1 = ConvRelu(skip[0] + out[4], out[4])
        self.final = nn.Conv2d(out[4], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        skips = []  # outputs of the original's conv1..conv5, full to 1/16 resolution
        for start, stop in self.stages:
            x = self.encoder[start:stop](x)
            skips.append(x)
        x = self.center(self.encoder[self.stages[-1][1] :](x))  # last pool, then up to 1/16
        decoders = (self.dec5, self.dec4, self.dec3, self.dec2)
        for decoder, skip in zip(decoders, skips[:0:-1], strict=True):
            x = decoder(torch.cat([x, skip], dim=1))  # decoder output first, as the original
        return self.final(self.dec1(torch.cat([x, skips[0]], dim=1)))


# Per decoder block (center, dec5, dec4, dec3, dec2): ConvRelu width, then ConvTranspose output;
# 32 base filters as in the paper and the original checkpoints.
MIDDLE_CHANNELS = (512, 512, 512, 256, 128)


class UNet11(TernausNet):
    """TernausNet with a VGG11 encoder; 25,364,513 parameters with one class."""

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__(vgg_features("A"), MIDDLE_CHANNELS, (256, 256, 128, 64, 32), num_classes)


class UNet16(TernausNet):
    """TernausNet with a VGG16 encoder (dec4 gives 256, not 128); 32,202,337 parameters, 1 class."""

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__(vgg_features("D"), MIDDLE_CHANNELS, (256, 256, 256, 64, 32), num_classes)


ENCODERS: dict[str, type[TernausNet]] = {"vgg11": UNet11, "vgg16": UNet16}


def check_input(x: torch.Tensor) -> None:
    """Raise ValueError unless `x` is (N, 3, H, W) with H and W multiples of 32."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"input of shape {tuple(x.shape)}: expected (N, 3, H, W)")
    height, width = x.shape[-2:]
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"input {height}x{width}: height and width must be multiples of {SIZE_MULTIPLE}; "
            "pad the image (predict does this)"
        )


def build_model(
    name: str,
    num_classes: int,
    weights: str | Path | None = None,
    offline_fallback: bool = False,
) -> TernausNet:
    """UNet11/UNet16 by encoder name, its encoder from `weights` ("imagenet", a .pth path, or None).

    Arguments are `conf/encoder/*.yaml`'s keys, so `build_model(**cfg.encoder, num_classes=...)`.
    """
    if name not in ENCODERS:
        raise ChoiceError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    model = ENCODERS[name](num_classes)
    load_encoder_weights(model.encoder, name, weights, offline_fallback=offline_fallback)
    return model


def _out_channels(layers: nn.Sequential) -> int:
    """Output channels of the last conv in `layers`."""
    return [layer for layer in layers if isinstance(layer, nn.Conv2d)][-1].out_channels
