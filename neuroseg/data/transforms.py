"""Normalisation shared by training and inference, and the train / eval augmentation pipelines."""

from __future__ import annotations

from collections.abc import Sequence

import albumentations as A
import cv2
import numpy as np

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


def _pad(min_hw: Sequence[int] | None = None, multiple: int | None = None) -> A.PadIfNeeded:
    """Zero padding at the bottom and right only, so pixel (y, x) of the tile stays at (y, x)."""
    height, width = min_hw if min_hw is not None else (None, None)
    return A.PadIfNeeded(
        min_height=height,
        min_width=width,
        pad_height_divisor=multiple,
        pad_width_divisor=multiple,
        position="top_left",
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        fill_mask=0,
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


def eval_transform(multiple: int = 32) -> A.Compose:
    """Pad the whole tile at bottom/right to a multiple of `multiple` (the encoder's stride).

    Validation and test see the entire tile, never a centre crop, so scores cover every pixel.
    """
    return A.Compose([_pad(multiple=multiple)])
