"""No host sync per training step: values leave the device only on the logger's steps."""

from __future__ import annotations

import collections
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize
from torch.overrides import TorchFunctionMode

from neuroseg.progress import ProgressBar
from neuroseg.train import train

# Tensor methods that copy a value to the host: on a GPU each waits for the queued kernels.
HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
}
# Host-side tensors by nature: Adam's step counters and the loader's random seeds.
HOST_SIDE = ("torch/optim/", "torch/utils/data/", "neuroseg/data/")


class HostReads(TorchFunctionMode):
    """Counts host reads of device-side tensors per training batch (`Batches.current`)."""

    def __init__(self) -> None:
        super().__init__()
        self.per_batch: collections.Counter[int] = collections.Counter()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in HOST_READS and Batches.current is not None:
            caller = _caller_file()
            if not any(part in caller for part in HOST_SIDE):
                self.per_batch[Batches.current] += 1
        return func(*args, **(kwargs or {}))


def _caller_file() -> str:
    """File of the first frame outside torch.overrides and this module."""
    import traceback

    for frame in reversed(traceback.extract_stack()[:-2]):
        if "torch/overrides" not in frame.filename and not frame.filename.endswith(__file__):
            return frame.filename.replace("\\", "/")
    return ""


class Batches(pl.Callback):
    """Which training batch is running (global step at its start), None outside training."""

    current: ClassVar[int | None] = None
    steps: ClassVar[list[int]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        Batches.current = trainer.global_step + 1  # the step this batch completes
        Batches.steps.append(Batches.current)

    def on_validation_epoch_start(self, *args: object) -> None:
        Batches.current = None

    def on_train_epoch_end(self, *args: object) -> None:
        Batches.current = None


@pytest.mark.parametrize(
    "accelerator",
    [
        "cpu",
        pytest.param(
            "gpu",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
            ],
        ),
    ],
)
def test_training_reads_device_values_only_on_logging_steps(
    accelerator: str, prepared_dir: Path, tmp_path: Path
) -> None:
    every = 4
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "train",
            overrides=[
                f"trainer={accelerator}",
                "encoder.weights=null",
                "data.crop_hw=[64,96]",
                "data.batch_size=2",
                "data.num_workers=0",
                f"data.dir={prepared_dir}",
                f"paths.output_dir={tmp_path}",
                "trainer.max_epochs=2",
                f"trainer.log_every_n_steps={every}",
                "model.image_every_n_epochs=0",
                "test=false",
                f"+callbacks.batches._target_={__name__}.Batches",
            ],
        )
    Batches.steps.clear()
    with HostReads() as reads:
        train(cfg)
    Batches.current = None
    assert len(Batches.steps) == 28  # 28 train tiles, batch 2, 2 epochs
    logging_steps = {step for step in Batches.steps if step % every == 0}
    quiet = {step: reads.per_batch[step] for step in Batches.steps if step not in logging_steps}
    assert quiet == dict.fromkeys(quiet, 0)
    # The counter does see reads: the logger and the bar take the loss on their steps.
    assert all(reads.per_batch[step] >= 1 for step in logging_steps)


def test_bar_shows_the_loss_of_the_last_logging_step() -> None:
    bar = ProgressBar(step_metrics=["train/loss"])
    trainer = SimpleNamespace(
        training=True, log_every_n_steps=5, loggers=[], progress_bar_metrics={"val/loss": 1.5}
    )
    shown = []
    for step, loss in ((5, 0.25), (6, 0.5), (9, 0.75), (10, 0.125)):
        trainer.global_step, trainer.callback_metrics = step, {"train/loss": torch.tensor(loss)}
        shown.append(bar.get_metrics(trainer, None))
    assert [items["train/loss"] for items in shown] == [0.25, 0.25, 0.25, 0.125]
    assert all(items["val/loss"] == 1.5 for items in shown)
