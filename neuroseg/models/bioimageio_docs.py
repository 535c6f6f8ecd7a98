"""The documentation parts of a bioimage.io package: its README and its cover image, which
bioimage.io shows on the model's page and Fiji/napari users read before running it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neuroseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from neuroseg.inference.overlay import gray_to_rgb8, overlay
from neuroseg.inference.window import SIZE_MULTIPLE
from neuroseg.models.bioimageio_settings import (
    PackageInfo,
    PackageSettings,
    input_dtype,
    min_input_px,
    output_channels,
)
from neuroseg.models.ternausnet import ENCODERS
from neuroseg.task import Task


def cover_image(gray: np.ndarray, mask: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, 2W, 3) uint8: the gray image | its classes over it (bioimage.io's 2:1 cover)."""
    return np.concatenate([gray_to_rgb8(gray), overlay(gray, mask, colors)], axis=1)


def readme_text(
    info: PackageInfo, encoder: str, task: Task, threshold: float, settings: PackageSettings
) -> str:
    """The package's README.md: what goes in, what comes out, how to tile, what it learnt from."""
    top = 2**settings.input_bit_depth - 1
    channels = output_channels(task)
    if task.out_channels == 1:
        activation = "sigmoid"
        mask = f"a neuron mask is probability > {threshold:.3g} (the checkpoint's threshold)"
    else:
        activation = "softmax over the channels"
        mask = "the class map is the argmax over the channels"
    citations = "\n".join(f"- {entry['text']}" for entry in info.cite)
    return f"""# {info.name}

{info.description}

## Input and output
- **Input** `input`: one gray brightfield image, {input_dtype(settings.input_bit_depth)}, axes
  batch, channel (1), y, x. Height and width: any multiple of {SIZE_MULTIPLE}, at least
  {min_input_px(settings.halo_px)} px. Larger images: pad to a multiple of {SIZE_MULTIPLE} or tile.
- **Preprocessing** (spec operations): float32, then `scale_linear` by 1/{top} to [0, 1].
- **Inside the network**: the gray channel is repeated to RGB and normalised with the ImageNet
  mean {list(IMAGENET_MEAN)} and std {list(IMAGENET_STD)} per channel (the VGG encoder's
  pretraining); the spec cannot repeat channels, so these steps are part of the weights.
- **Output** `probabilities`: float32 in [0, 1], channels {channels} ({activation}, part of the
  weights), same height and width as the input; {mask}.
- **Tiling**: the halo is {settings.halo_px} px: tiles overlap by {2 * settings.halo_px} px and
  each output tile loses {settings.halo_px} px per side, where pixels saw less context.
  `bioimageio.core.predict` also mirror-pads a whole image by the halo before the network and
  crops it after; neuroseg's own `predict` does not (it reflect-pads only up to a multiple of
  {SIZE_MULTIPLE}, and blends 768 x 1024 windows overlapping by 25 % with a cosine taper), so
  the two agree to 1e-4 on one window only when core runs without that padding
  (`predict_sample_without_blocking(sample, skip_input_padding=True,
  skip_output_cropping=True)`), or with a package exported with `halo_px=0`.

## Network
TernausNet {ENCODERS[encoder].__name__}: a U-Net whose encoder is
{encoder.upper()} (torchvision layout), trained with neuroseg. Weights: TorchScript, ONNX (opset
{settings.opset}) and a PyTorch state dict with its architecture source; all compute the same
function (checked to within {settings.tolerance:.0e}).

## Training data
{info.training_data}

## Use it
- Fiji: deepImageJ > Install model > from a zip file, then run it on a gray image.
- napari: the bioimage.io plugin (napari-bioimageio), or in Python
  `bioimageio.core.predict(model="<this zip>", inputs=image[None, None])`.
- Command line: `bioimageio test <this zip>` reproduces the test output.

## Cite
{citations}
"""
