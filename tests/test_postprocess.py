"""Post-processing of class maps: small-object removal and hole filling, hand-checked."""

from __future__ import annotations

import numpy as np

from neuroseg.inference.postprocess import fill_class_holes, postprocess, remove_small_class_objects


def blob_mask() -> np.ndarray:
    """12x12 map: a 5x5 neuron with a 1-px hole, a 1-px neuron speck, a 2-px axon speck."""
    mask = np.zeros((12, 12), dtype=np.uint8)
    mask[1:6, 1:6] = 1
    mask[3, 3] = 0  # hole
    mask[9, 9] = 1  # speck
    mask[10, 1:3] = 2
    return mask


def test_remove_small_objects_only_touches_its_class() -> None:
    mask = blob_mask()
    out = remove_small_class_objects(mask, class_id=1, min_object_px=2)
    assert out[9, 9] == 0 and (out[1:6, 1:6].sum() == 24)
    assert (out[10, 1:3] == 2).all()
    assert mask[9, 9] == 1  # input untouched


def test_diagonal_pixels_are_one_object() -> None:
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0] = mask[1, 1] = 1
    assert remove_small_class_objects(mask, 1, 2)[1, 1] == 1
    assert remove_small_class_objects(mask, 1, 3).sum() == 0


def test_fill_holes_fills_background_only() -> None:
    mask = blob_mask()
    out = fill_class_holes(mask, class_id=1)
    assert out[3, 3] == 1
    enclosed = np.zeros((5, 5), dtype=np.uint8)
    enclosed[[0, 4], :] = 2
    enclosed[:, [0, 4]] = 2
    enclosed[2, 2] = 1  # a neuron inside an axon loop stays a neuron
    filled = fill_class_holes(enclosed, class_id=2)
    assert filled[2, 2] == 1 and (filled[1:4, 1:4][filled[1:4, 1:4] != 1] == 2).all()


def test_postprocess_defaults_are_identity_and_options_apply_to_every_class() -> None:
    mask = blob_mask()
    np.testing.assert_array_equal(postprocess(mask, 3), mask)
    out = postprocess(mask, 3, min_object_px=3, fill_holes=True)
    assert out[3, 3] == 1 and out[9, 9] == 0 and (out[10, 1:3] == 0).all()
    assert out[1:6, 1:6].sum() == 25
