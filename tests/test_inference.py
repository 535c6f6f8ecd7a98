"""Sliding-window inference: window coverage, seamless blending, padding, one-window exactness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuroseg.data.transforms import normalize
from neuroseg.inference.window import (
    blend_weights,
    pad_to_multiple,
    predict_probs,
    probs_to_mask,
    taper,
    window_starts,
)
from neuroseg.models.ternausnet import build_model


class ConstantModel(nn.Module):
    """Logits equal to `value` everywhere: any seam in blending would show as a deviation."""

    def __init__(self, channels: int, value: float) -> None:
        super().__init__()
        self.channels, self.value = channels, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], self.channels, *x.shape[-2:]), self.value)


class PositionModel(nn.Module):
    """Logit = first input channel: output depends on the pixel, not on where the window sits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1]


@pytest.mark.parametrize(
    ("size", "window", "overlap"),
    [
        (64, 64, 0.25),
        (96, 64, 0.25),
        (100, 32, 0.5),
        (2048, 1024, 0.25),
        (1536, 768, 0.0),
        (65, 64, 0.9),
    ],
)
def test_window_starts_cover_exactly(size: int, window: int, overlap: float) -> None:
    starts = window_starts(size, window, overlap)
    assert starts[0] == 0 and starts[-1] + window == size
    covered = np.zeros(size, dtype=int)
    for start in starts:
        covered[start : start + window] += 1
    assert covered.min() >= 1
    gaps = np.diff(starts)
    assert (gaps <= window - round(window * overlap)).all()  # at least the asked overlap


def test_window_starts_hand_computed() -> None:
    assert window_starts(2048, 1024, 0.25) == [0, 512, 1024]
    assert window_starts(1536, 768, 0.0) == [0, 768]
    assert window_starts(50, 64, 0.25) == [0]


@pytest.mark.parametrize("overlap", [-0.1, 1.0])
def test_window_starts_bad_overlap(overlap: float) -> None:
    with pytest.raises(ValueError, match="overlap"):
        window_starts(100, 32, overlap)


def test_taper_positive_and_peaked() -> None:
    weights = taper(64)
    assert weights.min() > 0 and weights.argmax() in (31, 32)
    assert np.allclose(weights, weights[::-1])
    assert (blend_weights((32, 48), (True, True)) == 1).all()


@pytest.mark.parametrize("channels", [1, 3])
def test_constant_model_blends_without_seams(channels: int) -> None:
    image = np.random.default_rng(0).random((160, 224), dtype=np.float32)
    probs = predict_probs(ConstantModel(channels, 0.7), image, window=(64, 96), overlap=0.25)
    expected = 1 / (1 + np.exp(-0.7)) if channels == 1 else 1 / channels
    assert probs.shape == (channels, 160, 224) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_blending_recovers_a_pixelwise_model() -> None:
    """A model whose output depends only on each pixel must come out the same however it is cut."""
    image = np.random.default_rng(1).random((128, 192), dtype=np.float32)
    tiled = predict_probs(PositionModel(), image, window=(64, 64), overlap=0.5, batch_size=3)
    whole = torch.sigmoid(torch.from_numpy(normalize(image)[:1])).numpy()
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize("task_channels", [1, 3])
def test_single_window_equals_plain_forward(task_channels: int) -> None:
    torch.manual_seed(0)
    model = build_model("vgg11", task_channels, weights=None).eval()
    image = np.random.default_rng(2).random((64, 96), dtype=np.float32)
    probs = predict_probs(model, image, window=(768, 1024))
    with torch.no_grad():
        logits = model(torch.from_numpy(normalize(image))[None])
    plain = torch.sigmoid(logits) if task_channels == 1 else torch.softmax(logits, dim=1)
    np.testing.assert_array_equal(probs, plain[0].numpy())


def test_odd_size_padded_and_cropped_back() -> None:
    torch.manual_seed(0)
    model = nn.Conv2d(3, 3, kernel_size=3, padding=1).eval()  # any (N, 3, H, W) -> (N, 3, H, W)
    image = np.random.default_rng(3).random((70, 101), dtype=np.float32)
    probs = predict_probs(model, image, window=(64, 64), overlap=0.25, tta=True)
    assert probs.shape == (3, 70, 101)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    padded = pad_to_multiple(image)
    assert padded.shape == (96, 128)
    np.testing.assert_array_equal(padded[:70, :101], image)
    np.testing.assert_array_equal(padded[70, :101], image[68])  # reflected, not zero


def test_tta_of_flip_symmetric_model_changes_nothing() -> None:
    image = np.random.default_rng(4).random((64, 64), dtype=np.float32)
    plain = predict_probs(PositionModel(), image, window=(64, 64))
    flipped = predict_probs(PositionModel(), image, window=(64, 64), tta=True)
    np.testing.assert_allclose(plain, flipped, atol=1e-6)


def test_bad_window_and_image() -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        predict_probs(PositionModel(), np.zeros((64, 64), np.float32), window=(50, 64))
    with pytest.raises(ValueError, match="gray"):
        predict_probs(PositionModel(), np.zeros((64, 64, 3), np.float32))


def test_probs_to_mask() -> None:
    binary = np.array([[[0.2, 0.5, 0.51]]], dtype=np.float32)
    assert probs_to_mask(binary, 0.5).tolist() == [[0, 0, 1]]
    three = np.array([[[0.1]], [[0.3]], [[0.6]]], dtype=np.float32)
    assert probs_to_mask(three).tolist() == [[2]]


def test_bf16_autocast_stays_close_to_float32() -> None:
    torch.manual_seed(0)
    model = build_model("vgg11", 3).eval()
    image = np.random.default_rng(0).random((64, 96), dtype=np.float32)
    exact = predict_probs(model, image, window=(64, 64), overlap=0.25)
    fast = predict_probs(model, image, window=(64, 64), overlap=0.25, precision="bf16")
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    np.testing.assert_allclose(fast, exact, atol=0.05)
    with pytest.raises(ValueError, match="precision 'fp8'"):
        predict_probs(model, image, precision="fp8")
