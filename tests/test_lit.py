"""SegmentationModule: learns a tiny image, keeps plain hyper-parameters, draws overlays."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from neuroseg.inference.overlay import CLASS_COLORS, overlay
from neuroseg.training.callbacks import tile_panel
from neuroseg.training.module import SegmentationModule


def module(task: str = "binary", **kwargs: object) -> SegmentationModule:
    optimizer = partial(torch.optim.Adam, lr=1e-3)
    return SegmentationModule(encoder="vgg11", task=task, optimizer=optimizer, **kwargs)


def disk_image(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised (1, 3, size, size) image of a bright disk and its (1, 1, size, size) mask."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disk = ((yy - 20) ** 2 + (xx - 24) ** 2 < 100).float()
    image = ((0.2 + 0.5 * disk - 0.45) / 0.22).expand(1, 3, size, size)
    return image, disk[None, None]


def test_overfits_one_tiny_image() -> None:
    torch.manual_seed(0)
    model = module()
    image, target = disk_image()
    valid = torch.ones(1, 64, 64, dtype=torch.bool)
    optimizer = model.configure_optimizers()
    for _ in range(30):
        loss = model.loss(model(image), target, valid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        model.val_metrics.update(model(image), target, valid)
    assert model.val_metrics.compute()["iou_neurons"].item() > 0.9


def test_checkpoint_hyper_parameters_are_the_typed_arguments() -> None:
    loss = {"alpha": 0.3, "class_weights": [1.0, 2.0, 2.0]}
    model = SegmentationModule(
        encoder="vgg11",
        task="axons",
        optimizer=partial(torch.optim.SGD, lr=0.1),
        threshold=0.3,
        loss=loss,
    )
    hparams = dict(model.hparams)
    assert hparams["encoder"] == "vgg11" and hparams["encoder_weights"] is None
    assert hparams["task"] == "axons" and hparams["threshold"] == 0.3 and hparams["loss"] == loss
    assert model.loss.alpha == 0.3
    assert "optimizer" not in hparams and "scheduler" not in hparams
    assert all(
        key.startswith(("model.", "loss.", "train_", "val_", "test_")) for key in model.state_dict()
    )
    assert model.model.final.out_channels == 3


def test_compile_keeps_state_dict_names() -> None:
    plain, compiled = module(), module(compile=True)
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert any(key.startswith("model.encoder.0.") for key in compiled.state_dict())


def test_channels_last_gives_the_same_logits() -> None:
    torch.manual_seed(0)
    model = module()
    fast = module(channels_last=True)
    fast.load_state_dict(model.state_dict())
    image = torch.randn(2, 3, 64, 96)
    torch.testing.assert_close(fast(image), model(image), rtol=1e-4, atol=1e-4)


def test_scheduler_is_stepped_per_epoch_on_the_monitor() -> None:
    plateau = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max")
    config = module(scheduler=plateau).configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam)
    assert config["lr_scheduler"]["monitor"] == "val/iou"
    assert config["lr_scheduler"]["interval"] == "epoch"


def test_overlay_tints_neurons_green_and_axons_red() -> None:
    gray = np.full((2, 2), 128, np.uint8)
    classes = np.array([[0, 1], [2, 0]])
    rgb = overlay(gray, classes, CLASS_COLORS, alpha=1.0)
    assert rgb[0, 0].tolist() == [128, 128, 128]
    assert rgb[0, 1].tolist() == [0, 255, 0]
    assert rgb[1, 0].tolist() == [255, 0, 0]


def test_tile_panel_is_input_truth_prediction_side_by_side() -> None:
    image = torch.randn(3, 4, 6)
    truth, pred = torch.zeros(4, 6, dtype=torch.long), torch.ones(4, 6, dtype=torch.long)
    valid = torch.ones(4, 6, dtype=torch.bool)
    panel = tile_panel(image, truth, pred, valid)
    assert panel.shape == (4, 18, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[:, :6], panel[:, 6:12])  # no truth: plain gray
    assert (panel[:, 12:, 1] >= panel[:, 12:, 0]).all()  # prediction tinted green
    assert (panel[:, 12:, 1] > panel[:, 12:, 0]).any()


@pytest.mark.parametrize("task", ["binary", "axons"])
def test_validation_on_whole_tiles_of_any_batch_size(task: str) -> None:
    model = module(task)
    logits = model(torch.randn(3, 3, 96, 128))
    assert logits.shape == (3, 1 if task == "binary" else 3, 96, 128)
