"""A checkpoint made ready to segment images: model on its device, task, threshold, settings.

Shared by predict and evaluate, which read the same config keys (ckpt_path, trust_checkpoint,
encoder, task, threshold, device, threads, window, overlap, batch_size, tta, postprocess).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from neuroseg.errors import UsageError
from neuroseg.inference.postprocess import postprocess
from neuroseg.inference.window import predict_probs, probs_to_mask, resolve_device
from neuroseg.io import scale_to_unit, to_gray
from neuroseg.models.checkpoint import LoadedModel, load_checkpoint
from neuroseg.runtime import resolve_precision, set_threads
from neuroseg.task import Task, get_task

log = logging.getLogger(__name__)

# Without a tuned or saved threshold, a binary model's probabilities are cut at one half.
DEFAULT_THRESHOLD = 0.5


def group_name(value: DictConfig | str | None) -> str | None:
    """Name of a selected config group option (`encoder=vgg16` -> "vgg16"); None when unset."""
    if value is None or isinstance(value, str):
        return value
    return str(value.name)


def load_model(cfg: DictConfig) -> tuple[LoadedModel, Task, float, torch.device]:
    """Model on its device, its task, and the threshold: cfg's, else the checkpoint's, else 0.5."""
    if cfg.get("ckpt_path") is None:
        raise UsageError(
            "ckpt_path is not set; pass ckpt_path=path/to/model.ckpt (or a legacy .pth)"
        )
    loaded = load_checkpoint(
        Path(cfg.ckpt_path),
        encoder=group_name(cfg.encoder),
        task=group_name(cfg.task),
        trusted=cfg.trust_checkpoint,
    )
    threshold = next(
        float(t) for t in (cfg.threshold, loaded.threshold, DEFAULT_THRESHOLD) if t is not None
    )
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"threshold {threshold}: choose a probability in [0, 1]")
    device = resolve_device(cfg.device)
    set_threads(cfg.get("threads"))
    loaded.model.to(device)
    log.info(
        "%s checkpoint %s: %s, task %s, threshold %.3f, device %s",
        loaded.source,
        cfg.ckpt_path,
        loaded.encoder,
        loaded.task,
        threshold,
        device,
    )
    return loaded, get_task(loaded.task), threshold, device


def inference_settings(cfg: DictConfig) -> dict[str, object]:
    """`predict_probs` keyword arguments from the config (window, overlap, batch_size, tta,
    precision); bf16 asked of a CPU without native bf16 runs in float32, with one warning."""
    settings = {key: cfg[key] for key in ("window", "overlap", "batch_size", "tta", "precision")}
    accelerator = "gpu" if str(cfg.device).startswith("cuda") else str(cfg.device)
    if "bf16" in resolve_precision(accelerator, str(settings["precision"])):
        return settings
    return {**settings, "precision": 32}


def class_map(probs: np.ndarray, task: Task, threshold: float, cfg: DictConfig) -> np.ndarray:
    """(H, W) uint8 classes of (C, H, W) probabilities, with the configured post-processing."""
    return postprocess(probs_to_mask(probs, threshold), task.num_classes, **cfg.postprocess)


def segment(
    model: torch.nn.Module,
    image: np.ndarray,
    task: Task,
    threshold: float,
    cfg: DictConfig,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (C, H, W) float32, class map (H, W) uint8) of a gray/RGB 8/16-bit image."""
    unit = scale_to_unit(to_gray(image))
    settings = inference_settings(cfg)
    probs = predict_probs(model, unit, device=device, progress=cfg.progress, **settings)
    return probs, class_map(probs, task, threshold, cfg)
