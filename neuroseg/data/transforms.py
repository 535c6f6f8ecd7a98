"""Normalisation shared by training and inference, and the train / eval augmentation pipelines."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import albumentations as A
import numpy as np

from neuroseg.models.ternausnet import SIZE_MULTIPLE

# Statistics of the ImageNet-pretrained VGG encoders; fixed by the weights, not a tuning knob.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(unit_gray: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 ImageNet-normalised copy of a gray (H, W) image in [0, 1].

    Gray is replicated to three channels because the encoders were pretrained on RGB; this is
    the one normalisation used by training, evaluation and prediction.
    """
    if unit_gray.ndim != 2:
        raise ValueError(f"expected a gray (H, W) image in [0, 1], got shape {unit_gray.shape}")
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, dtype=np.float32)[:, None, None]
    return (unit_gray.astype(np.float32, copy=False)[None] - mean) / std


def padded_hw(
    shape_hw: Sequence[int], multiple: int = SIZE_MULTIPLE, min_hw: Sequence[int] = (1, 1)
) -> tuple[int, int]:
    """(height, width) of the smallest padding of `shape_hw` that is at least `min_hw` and a
    multiple of `multiple` on both sides."""
    sides = (max(int(side), int(least)) for side, least in zip(shape_hw, min_hw, strict=True))
    return tuple(-(-side // multiple) * multiple for side in sides)  # type: ignore[return-value]


def pad_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad an (..., h, w) image at bottom/right to (..., height, width); (y, x) stays put.

    The one fill rule for images in training, validation, test and prediction. Reflection, not
    zeros: a mirrored border has the texture and brightness of the tissue next to it, so the
    network sees no artificial black edge (which it never met inside a tile) and predictions
    near the border match the sliding-window predictions on whole images. Masks are padded with
    zeros instead (`pad_mask`) and marked invalid, so padding is never scored.
    """
    pad_h, pad_w = height - image.shape[-2], width - image.shape[-1]
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"cannot pad an image of shape {image.shape} down to {height}x{width}")
    if pad_h == 0 and pad_w == 0:
        return image
    # numpy's reflect needs two pixels along an axis; a 1-px side is repeated instead.
    mode = "symmetric" if min(image.shape[-2:]) < 2 else "reflect"
    widths = [(0, 0)] * (image.ndim - 2) + [(0, pad_h), (0, pad_w)]
    return np.pad(image, widths, mode=mode)


def pad_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Zero-pad an (..., h, w) mask at bottom/right to (..., height, width): padding is class 0
    and, in a validity mask, False."""
    widths = [(0, 0)] * (mask.ndim - 2) + [
        (0, height - mask.shape[-2]),
        (0, width - mask.shape[-1]),
    ]
    return np.pad(mask, widths)


def pad_to_multiple(image: np.ndarray, multiple: int = SIZE_MULTIPLE) -> np.ndarray:
    """Reflect-pad an (H, W) image at bottom/right so both sides are multiples of `multiple`."""
    return pad_image(image, *padded_hw(image.shape[-2:], multiple))


def _pad_image_step(
    image: np.ndarray, multiple: int, min_hw: Sequence[int], **_: object
) -> np.ndarray:
    return pad_image(image, *padded_hw(image.shape[:2], multiple, min_hw))


def _pad_mask_step(
    mask: np.ndarray, multiple: int, min_hw: Sequence[int], **_: object
) -> np.ndarray:
    return pad_mask(mask, *padded_hw(mask.shape[:2], multiple, min_hw))


def _pad(min_hw: Sequence[int] = (1, 1), multiple: int = 1) -> A.Lambda:
    """Pipeline step: `pad_image` on the image, `pad_mask` on the masks (bottom/right only)."""
    min_hw = tuple(int(side) for side in min_hw)
    return A.Lambda(
        image=partial(_pad_image_step, multiple=multiple, min_hw=min_hw),
        mask=partial(_pad_mask_step, multiple=multiple, min_hw=min_hw),
    )


def train_transform(
    crop_hw: Sequence[int],
    *,
    hflip_p: float = 0.0,
    vflip_p: float = 0.0,
    brightness_limit: float = 0.0,
    contrast_limit: float = 0.0,
    brightness_contrast_p: float = 0.0,
    noise_std_range: Sequence[float] = (0.0, 0.0),
    noise_p: float = 0.0,
) -> A.Compose:
    """Pad-if-needed, random crop of `crop_hw`, flips, brightness/contrast, Gaussian noise.

    Works on a gray (H, W) float32 image in [0, 1] plus masks (`masks=[target, valid]`); the
    defaults switch every augmentation off, the values come from conf/data. Noise std is a
    fraction of the [0, 1] range. The crop is seeded per sample by the dataset, not here.
    """
    height, width = (int(side) for side in crop_hw)
    return A.Compose(
        [
            _pad(min_hw=(height, width)),
            A.RandomCrop(height=height, width=width),
            A.HorizontalFlip(p=hflip_p),
            A.VerticalFlip(p=vflip_p),
            A.RandomBrightnessContrast(
                brightness_limit=brightness_limit,
                contrast_limit=contrast_limit,
                p=brightness_contrast_p,
            ),
            A.GaussNoise(std_range=tuple(float(s) for s in noise_std_range), p=noise_p),
        ]
    )


def eval_transform(multiple: int = SIZE_MULTIPLE) -> A.Compose:
    """Pad the whole tile at bottom/right to a multiple of `multiple` (the encoder's stride).

    Validation and test see the entire tile, never a centre crop, so scores cover every pixel.
    """
    return A.Compose([_pad(multiple=multiple)])
