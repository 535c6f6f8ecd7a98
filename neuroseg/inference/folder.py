"""Segment a file or a folder of images: masks, overlays, optional probabilities and label copies,
and a morphometrics table. An unreadable image is reported by name, skipped and listed in
failures.csv; the others are still written."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroseg.analysis.morphometrics import COLUMNS, measure_mask
from neuroseg.data.labels import write_label_copies
from neuroseg.inference.overlay import overlay
from neuroseg.inference.paths import check_label_names, find_images, relative_stem
from neuroseg.inference.predictor import load_settings_model, segment
from neuroseg.inference.settings import InferenceSettings, PredictionSettings
from neuroseg.io import read_image, to_gray, write_csv, write_png, write_tiff
from neuroseg.runtime import progress_bar, set_threads
from neuroseg.task import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictResult:
    """What a predict run wrote: one morphometrics row per image, and the skipped files."""

    output: Path
    rows: list[dict[str, int | float | str]]
    failures: list[dict[str, str]]


def write_probs(output: Path, stem: str, probs: np.ndarray, task: Task) -> None:
    """One float32 (H, W) TIFF per output channel, `<stem>_probs_<class>.tif`, values in [0, 1].

    Binary models have one channel, the neuron probability; 3-class models one per class.
    """
    names = task.class_names[1:] if task.out_channels == 1 else task.class_names
    for name, plane in zip(names, probs, strict=True):
        write_tiff(output / f"{stem}_probs_{name}.tif", plane)


@dataclass(frozen=True)
class Segmenter:
    """A loaded model with what each image needs: task, threshold, device and settings."""

    model: torch.nn.Module
    task: Task
    threshold: float
    device: torch.device
    settings: InferenceSettings


def write_outputs(
    segmenter: Segmenter, prediction: PredictionSettings, path: Path, image: np.ndarray
) -> np.ndarray:
    """Segment one image and write its mask, overlay [, probabilities, label copies]."""
    task, settings = segmenter.task, segmenter.settings
    stem, output = relative_stem(path, prediction.input), prediction.output
    probs, mask = segment(
        segmenter.model, image, task, segmenter.threshold, settings, segmenter.device
    )
    gray = to_gray(image)
    write_png(output / f"{stem}_mask.png", mask)
    style = settings.overlay
    write_png(output / f"{stem}_overlay.png", overlay(gray, mask, style.colors, style.alpha))
    if prediction.save_probs:
        write_probs(output / stem.parent, stem.name, probs, task)
    if prediction.labels is not None:
        copies = prediction.labels
        folder, with_axons = path.resolve().parent.name, task.num_classes == 3
        write_label_copies(
            output, folder, path.stem, gray, mask, copies.colors, copies.prefix, with_axons
        )
    return mask


def predict_folder(inference: InferenceSettings, prediction: PredictionSettings) -> PredictResult:
    """Write `<stem>_mask.png`, `<stem>_overlay.png` [, `<stem>_probs_<class>.tif`] per image,
    then morphometrics.csv and failures.csv into `prediction.output`."""
    paths = find_images(prediction.input, prediction.output)
    if prediction.labels is not None:
        check_label_names(paths)
        if prediction.labels.closing_radius:
            log.warning("palette closing_radius > 0: prepare will close the painted labels")
    set_threads(inference.threads)
    loaded, task, threshold, device = load_settings_model(inference)
    segmenter = Segmenter(loaded.model, task, threshold, device, inference)
    rows: list[dict[str, int | float | str]] = []
    failures: list[dict[str, str]] = []
    for path in progress_bar(paths, "images", "image", enabled=inference.progress):
        stem = relative_stem(path, prediction.input)
        name = (stem.parent / path.name).as_posix()  # the image, relative to input
        try:
            image = read_image(path)
        except (ValueError, OSError) as error:
            log.error("skipped %s: %s", name, error)
            failures.append({"image": name, "error": str(error)})
            continue
        mask = write_outputs(segmenter, prediction, path, image)
        rows.append(
            {"image": name} | measure_mask(mask, task.num_classes, prediction.min_neuron_px)
        )
        log.info("%s: %d neurons", name, rows[-1]["neuron_count"])
    write_csv(prediction.output / "morphometrics.csv", rows, COLUMNS)
    write_csv(prediction.output / "failures.csv", failures, ("image", "error"))
    if failures:
        skipped = ", ".join(failure["image"] for failure in failures)
        log.error("%d of %d images failed: %s", len(failures), len(paths), skipped)
    return PredictResult(output=prediction.output, rows=rows, failures=failures)
