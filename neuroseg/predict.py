"""Segment new images with a trained checkpoint: masks, overlays, optional probabilities, and a
morphometrics table.

    python -m neuroseg.predict ckpt_path=model.ckpt input=images/ [tta=true] [save_probs=true]

An unreadable image is reported by name and skipped; the others are still written, the skipped
ones are listed in failures.csv, and the command exits with status 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from neuroseg.inference import predict_probs, probs_to_mask, resolve_device
from neuroseg.io import (
    list_images,
    read_image,
    scale_to_unit,
    to_gray,
    write_csv,
    write_png,
    write_tiff,
)
from neuroseg.models.checkpoint import LoadedModel, load_checkpoint
from neuroseg.morphometrics import COLUMNS, measure
from neuroseg.overlay import overlay
from neuroseg.postprocess import postprocess
from neuroseg.task import Task, get_task

log = logging.getLogger(__name__)

# Without a tuned or saved threshold, a binary model's probabilities are cut at one half.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class PredictResult:
    """What a predict run wrote: one morphometrics row per image, and the skipped files."""

    output: Path
    rows: list[dict[str, int | str]]
    failures: list[dict[str, str]]


def group_name(value: DictConfig | str | None) -> str | None:
    """Name of a selected config group option (`encoder=vgg16` -> "vgg16"); None when unset."""
    if value is None or isinstance(value, str):
        return value
    return str(value.name)


def load_model(cfg: DictConfig) -> tuple[LoadedModel, Task, float, torch.device]:
    """Model on its device, its task, and the threshold: cfg's, else the checkpoint's, else 0.5."""
    if cfg.get("ckpt_path") is None:
        raise ValueError(
            "ckpt_path is not set; pass ckpt_path=path/to/model.ckpt (or a legacy .pth)"
        )
    loaded = load_checkpoint(
        Path(cfg.ckpt_path), encoder=group_name(cfg.encoder), task=group_name(cfg.task)
    )
    threshold = next(
        float(t) for t in (cfg.threshold, loaded.threshold, DEFAULT_THRESHOLD) if t is not None
    )
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold}: choose a probability in [0, 1]")
    device = resolve_device(cfg.device)
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
    """`predict_probs` keyword arguments from the config (window, overlap, batch_size, tta)."""
    return {key: cfg[key] for key in ("window", "overlap", "batch_size", "tta")}


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
    probs = predict_probs(model, unit, device=device, **inference_settings(cfg))
    return probs, class_map(probs, task, threshold, cfg)


def write_probs(output: Path, stem: str, probs: np.ndarray, task: Task) -> None:
    """One float32 (H, W) TIFF per output channel, `<stem>_probs_<class>.tif`, values in [0, 1].

    Binary models have one channel, the neuron probability; 3-class models one per class.
    """
    names = task.class_names[1:] if task.out_channels == 1 else task.class_names
    for name, plane in zip(names, probs, strict=True):
        write_tiff(output / f"{stem}_probs_{name}.tif", plane)


def check_stems(paths: list[Path], folder: Path) -> None:
    """Raise ValueError listing names whose outputs would overwrite each other (a.tif, a.png)."""
    seen: dict[str, list[str]] = {}
    for path in paths:
        seen.setdefault(path.stem, []).append(path.name)
    clashes = [names for names in seen.values() if len(names) > 1]
    if clashes:
        raise ValueError(
            f"{folder}: images share a name and would overwrite each other's outputs: {clashes}; "
            "rename or move them"
        )


def predict(cfg: DictConfig) -> PredictResult:
    """Write `<stem>_mask.png`, `<stem>_overlay.png` [, `<stem>_probs_<class>.tif`] per image, then
    morphometrics.csv and failures.csv into `cfg.output`."""
    if cfg.get("input") is None:
        raise ValueError("input is not set; pass input=<image file or folder of images>")
    paths = list_images(Path(cfg.input))
    if not paths:
        raise ValueError(
            f"{cfg.input}: no .tif/.png/.jpg images there; pass input=<file or folder>"
        )
    check_stems(paths, Path(cfg.input))
    loaded, task, threshold, device = load_model(cfg)
    output = Path(cfg.output)
    rows: list[dict[str, int | str]] = []
    failures: list[dict[str, str]] = []
    for path in paths:
        try:
            image = read_image(path)
        except (ValueError, OSError) as error:
            log.error("skipped %s: %s", path.name, error)
            failures.append({"image": path.name, "error": str(error)})
            continue
        probs, mask = segment(loaded.model, image, task, threshold, cfg, device)
        write_png(output / f"{path.stem}_mask.png", mask)
        write_png(
            output / f"{path.stem}_overlay.png",
            overlay(to_gray(image), mask, **OmegaConf.to_container(cfg.overlay)),
        )
        if cfg.save_probs:
            write_probs(output, path.stem, probs, task)
        rows.append({"image": path.name} | measure(mask, task.num_classes, cfg.min_neuron_px))
        log.info("%s: %d neurons", path.name, rows[-1]["neuron_count"])
    write_csv(output / "morphometrics.csv", rows, COLUMNS)
    write_csv(output / "failures.csv", failures, ("image", "error"))
    if failures:
        log.error(
            "%d of %d images failed: %s",
            len(failures),
            len(paths),
            ", ".join(f["image"] for f in failures),
        )
    return PredictResult(output=output, rows=rows, failures=failures)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Entry point; exits with status 1 when any image could not be read."""
    if predict(cfg).failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
