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
from pytorch_lightning.callbacks import TQDMProgressBar
from torch.overrides import TorchFunctionMode

from neuroseg.train import train
from neuroseg.training.progress import ProgressBar

# Tensor methods that copy a value to the host: on a GPU each waits for the queued kernels.
HOST_READS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.cpu,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.__format__,
    torch.Tensor.__array__,
    torch.Tensor.nonzero,
    torch.Tensor.equal,
    torch.Tensor.allclose,
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


class CountingMetrics(dict):
    """`trainer.callback_metrics` stand-in that counts the values the bar takes."""

    reads = 0

    def __getitem__(self, name: str) -> torch.Tensor:
        CountingMetrics.reads += 1
        return super().__getitem__(name)


def test_bar_reads_the_loss_once_per_logging_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the bar's own logic: the tqdm drawing of the parent class is switched off.
    monkeypatch.setattr(TQDMProgressBar, "on_train_batch_end", lambda *args: None)
    monkeypatch.setattr(TQDMProgressBar, "on_train_epoch_end", lambda *args: None)
    bar = ProgressBar(step_metrics=["train/loss"])
    trainer = SimpleNamespace(
        training=True, log_every_n_steps=5, loggers=[], progress_bar_metrics={"val/loss": 1.5}
    )
    CountingMetrics.reads = 0
    shown, reads = [], []
    # Two batches per optimizer step (gradient accumulation), steps 0 (before any) to 11.
    for batch_idx, step in enumerate([0, 0, *(s for s in range(1, 12) for _ in range(2))]):
        trainer.global_step = step
        trainer.callback_metrics = CountingMetrics({"train/loss": torch.tensor(step / 8)})
        bar.on_train_batch_end(trainer, None, None, None, batch_idx)
        shown.append(bar.get_metrics(trainer, None).get("train/loss"))
        reads.append(CountingMetrics.reads)
    # Step 0 shows nothing; steps 5 and 10 are read once each, on their first batch.
    assert shown[:2] == [None, None] and reads[-1] == 2
    assert shown[2 + 2 * 4 : 2 + 2 * 5] == [5 / 8, 5 / 8]  # batches of step 5
    assert shown[-1] == 10 / 8 and bar.get_metrics(trainer, None)["val/loss"] == 1.5
    bar.on_train_epoch_end(trainer, None)  # a new step: the epoch's last loss is read
    assert bar.get_metrics(trainer, None)["train/loss"] == 11 / 8 and CountingMetrics.reads == 3
    bar.on_train_epoch_end(trainer, None)  # the same step again: no second read
    assert CountingMetrics.reads == 3
    bar.disable()  # as on DDP ranks other than 0: nothing to show, nothing read
    trainer.global_step = 15
    bar.on_train_batch_end(trainer, None, None, None, 0)
    assert CountingMetrics.reads == 3
