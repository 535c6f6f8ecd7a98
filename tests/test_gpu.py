"""The CUDA paths: bf16 training with the GPU settings, and prediction equal to the CPU's.

Skipped without CUDA; `python -m pytest -m gpu` runs them on a GPU machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize

from neuroseg.inference.window import predict_probs
from neuroseg.models.ternausnet import build_model
from neuroseg.train import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_gpu_training_with_the_gpu_settings(prepared_dir: Path, tmp_path: Path) -> None:
    overrides = ["trainer=gpu", "data=gpu", "encoder.weights=null", f"data.dir={prepared_dir}"]
    overrides += ["data.num_workers=0", "data.crop_hw=[64,96]", "data.batch_size=4"]
    overrides += ["trainer.max_epochs=2", "+trainer.limit_test_batches=1"]
    overrides += [f"paths.output_dir={tmp_path}"]
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("train", overrides=overrides)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.data.pin_memory
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])
    assert 0.0 <= metrics["test/iou"] <= 1.0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_gpu_prediction_matches_the_cpu() -> None:
    torch.manual_seed(0)
    model = build_model("vgg11", 3, weights=None).eval()
    image = np.random.default_rng(0).random((160, 224), dtype=np.float32)
    settings = dict(window=(96, 128), overlap=0.25, batch_size=2)
    on_cpu = predict_probs(model, image, device="cpu", **settings)
    on_gpu = predict_probs(model.cuda(), image, device="cuda", **settings)
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-3)
    in_bf16 = predict_probs(model, image, device="cuda", precision="bf16", **settings)
    np.testing.assert_allclose(in_bf16, on_cpu, atol=0.05)
