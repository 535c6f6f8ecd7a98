"""A checkpoint made ready to segment images (model on its device, task, threshold), and the
segmentation of one image with `InferenceSettings`; shared by predict, evaluate and napari."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from neuroseg.errors import UsageError
from neuroseg.inference.postprocess import postprocess
from neuroseg.inference.settings import InferenceSettings, PostprocessSettings
from neuroseg.inference.window import predict_probs, probs_to_mask, resolve_device
from neuroseg.io import scale_to_unit, to_gray
from neuroseg.models.checkpoint import LoadedModel, load_checkpoint
from neuroseg.task import Task, get_task

log = logging.getLogger(__name__)

# Without a tuned or saved threshold, a binary model's probabilities are cut at one half.
DEFAULT_THRESHOLD = 0.5


def load_model(
    ckpt_path: Path | str | None,
    encoder: str | None = None,
    task: str | None = None,
    trusted: bool = False,
    device: str | torch.device = "auto",
    threshold: float | None = None,
) -> tuple[LoadedModel, Task, float, torch.device]:
    """Model on its device, its task, and the threshold: `threshold`, else the checkpoint's
    (a tuned sidecar, then the saved one), else 0.5.

    `encoder`/`task` name an original (legacy) .pth file's network; a checkpoint from train
    names its own. `trusted` also unpickles objects beyond tensors (only for a trusted file).
    """
    if ckpt_path is None:
        raise UsageError(
            "ckpt_path is not set; pass ckpt_path=path/to/model.ckpt (or a legacy .pth)"
        )
    loaded = load_checkpoint(Path(ckpt_path), encoder=encoder, task=task, trusted=trusted)
    chosen = next(t for t in (threshold, loaded.threshold, DEFAULT_THRESHOLD) if t is not None)
    if not 0.0 <= float(chosen) <= 1.0:
        raise UsageError(f"threshold {chosen}: choose a probability in [0, 1]")
    on = resolve_device(device) if isinstance(device, str) else device
    loaded.model.to(on)
    log.info(
        "%s checkpoint %s: %s, task %s, threshold %.3f, device %s",
        loaded.source,
        ckpt_path,
        loaded.encoder,
        loaded.task,
        float(chosen),
        on,
    )
    return loaded, get_task(loaded.task), float(chosen), on


def load_settings_model(
    settings: InferenceSettings,
) -> tuple[LoadedModel, Task, float, torch.device]:
    """`load_model` with the checkpoint, device and threshold that `settings` name."""
    return load_model(
        settings.ckpt_path,
        encoder=settings.encoder,
        task=settings.task,
        trusted=settings.trust_checkpoint,
        device=settings.device,
        threshold=settings.threshold,
    )


def image_probs(
    model: torch.nn.Module,
    unit_gray: np.ndarray,
    settings: InferenceSettings,
    device: torch.device,
    progress: bool = False,
) -> np.ndarray:
    """(C, H, W) float32 probabilities of an (H, W) image in [0, 1] by `settings`' windows;
    `progress` draws a bar over the windows (a whole image, not a prepared tile)."""
    return predict_probs(
        model,
        unit_gray,
        window=settings.window,
        overlap=settings.overlap,
        batch_size=settings.batch_size,
        tta=settings.tta,
        device=device,
        precision=settings.precision,
        progress=progress,
    )


def class_map(
    probs: np.ndarray, task: Task, threshold: float, options: PostprocessSettings
) -> np.ndarray:
    """(H, W) uint8 classes of (C, H, W) probabilities, with the configured post-processing."""
    return postprocess(
        probs_to_mask(probs, threshold),
        task.num_classes,
        min_object_px=options.min_object_px,
        fill_holes=options.fill_holes,
    )


def segment(
    model: torch.nn.Module,
    image: np.ndarray,
    task: Task,
    threshold: float,
    settings: InferenceSettings,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (C, H, W) float32, class map (H, W) uint8) of a gray/RGB 8/16-bit image."""
    unit = scale_to_unit(to_gray(image))
    probs = image_probs(model, unit, settings, device, progress=settings.progress)
    return probs, class_map(probs, task, threshold, settings.postprocess)
