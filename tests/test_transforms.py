"""Normalisation and augmentation pipelines on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.data.transforms import (
    eval_transform,
    normalize,
    pad_image,
    pad_to_multiple,
    train_transform,
)


def test_normalize_constant_image_gives_hand_computed_channels() -> None:
    out = normalize(np.full((4, 6), 0.5, np.float32))
    # (0.5 - mean) / std per ImageNet channel, worked out by hand.
    expected = [(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225]
    assert out.shape == (3, 4, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0.0655022, 0.1964286, 0.4177778], atol=1e-6)
    np.testing.assert_allclose(out.reshape(3, -1), np.repeat(expected, 24).reshape(3, 24), 1e-6)


def test_normalize_rejects_rgb() -> None:
    with pytest.raises(ValueError, match="gray"):
        normalize(np.zeros((4, 6, 3), np.float32))


def test_eval_transform_reflects_image_and_zeroes_masks_to_multiple_of_32() -> None:
    image = np.random.default_rng(0).random((50, 70), dtype=np.float32)
    mask = np.ones((50, 70), np.uint8)
    out = eval_transform(32)(image=image, masks=[mask])
    assert out["image"].shape == (64, 96) and out["masks"][0].shape == (64, 96)
    np.testing.assert_array_equal(out["image"][:50, :70], image)  # coordinates kept
    # Row 50 mirrors row 48 and column 70 mirrors column 68 (reflection without the edge pixel).
    np.testing.assert_array_equal(out["image"][50:64, :70], image[48:34:-1])
    np.testing.assert_array_equal(out["image"][:50, 70:96], image[:, 68:42:-1])
    assert out["masks"][0].sum() == 50 * 70


def test_one_padding_rule_for_evaluation_and_prediction() -> None:
    image = np.random.default_rng(3).random((40, 33), dtype=np.float32)
    np.testing.assert_array_equal(eval_transform()(image=image)["image"], pad_to_multiple(image))


def test_pad_image_pads_leading_channels_and_one_pixel_sides() -> None:
    chw = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    padded = pad_image(chw, 5, 6)
    assert padded.shape == (2, 5, 6)
    np.testing.assert_array_equal(padded[:, 3, :4], chw[:, 1])  # mirrored about the last row
    np.testing.assert_array_equal(pad_image(np.ones((1, 1)), 3, 2), np.ones((3, 2)))
    with pytest.raises(ValueError, match="cannot pad"):
        pad_image(chw, 2, 6)


def test_eval_transform_leaves_multiple_of_32_untouched() -> None:
    image = np.random.default_rng(1).random((64, 96), dtype=np.float32)
    out = eval_transform()(image=image)
    np.testing.assert_array_equal(out["image"], image)


def test_train_transform_crops_to_size_and_pads_small_tiles() -> None:
    image = np.random.default_rng(2).random((96, 128), dtype=np.float32)
    out = train_transform((64, 96))(image=image)
    assert out["image"].shape == (64, 96)
    small = train_transform((128, 160))(image=image, masks=[np.ones((96, 128), np.uint8)])
    assert small["image"].shape == (128, 160)
    assert small["masks"][0].sum() == 96 * 128  # padding is marked 0 in every mask


def test_train_transform_flips_follow_probabilities() -> None:
    image = np.arange(64 * 96, dtype=np.float32).reshape(64, 96) / (64 * 96)
    both = train_transform((64, 96), hflip_p=1.0, vflip_p=1.0)(image=image)
    np.testing.assert_array_equal(both["image"], image[::-1, ::-1])
    none = train_transform((64, 96))(image=image)
    np.testing.assert_array_equal(none["image"], image)  # defaults switch augmentation off


def test_train_transform_photometric_stays_in_unit_range() -> None:
    image = np.full((64, 96), 0.98, np.float32)
    transform = train_transform(
        (64, 96),
        brightness_limit=0.3,
        contrast_limit=0.3,
        brightness_contrast_p=1.0,
        noise_std_range=(0.1, 0.1),
        noise_p=1.0,
    )
    out = transform(image=image)["image"]
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert out.std() > 0.01  # noise was added
