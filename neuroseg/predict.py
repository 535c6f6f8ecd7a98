"""Segment new images with a trained checkpoint: masks, overlays, optional probabilities, and a
morphometrics table.

    python -m neuroseg.predict ckpt_path=model.ckpt input=images/ [tta=true] [save_probs=true]
        [labels=true]

A folder is searched with its sub-folders, whose layout the outputs repeat: the lab's
`originals/<condition>/<n>.tif` gives `<output>/<condition>/<n>_mask.png`, where analyze looks;
labels=true adds `<output>/labels/<condition>/<labels_prefix>_<n>.png` (and `labels_axons/`), the
lab's painted-label layout, so a corrected copy dropped into the raw tree is read by prepare.

An unreadable image is reported by name and skipped; the others are still written, the skipped
ones are listed in failures.csv, and the command exits with status 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from neuroseg.analysis.morphometrics import COLUMNS, measure_mask
from neuroseg.cli import command
from neuroseg.data.labels import write_label_copies
from neuroseg.data.pairing import LABELS, LABELS_AXONS
from neuroseg.errors import UsageError
from neuroseg.inference.overlay import overlay
from neuroseg.inference.predictor import load_model, segment
from neuroseg.io import (
    list_images,
    read_image,
    to_gray,
    write_csv,
    write_png,
    write_tiff,
)
from neuroseg.runtime import progress_bar
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


def is_run_folder(folder: Path) -> bool:
    """True for a folder a neuroseg run wrote (Hydra's .hydra/, or predict's table): a tree
    searched for images must not feed earlier masks and overlays back in."""
    found = (folder / ".hydra").is_dir() or (folder / "morphometrics.csv").is_file()
    if found:
        log.info("not searched for images: %s (a run's output folder)", folder)
    return found


def is_output(path: Path, output: Path) -> bool:
    """True for a mask, overlay or probability file that predict wrote under `output`: an
    output folder inside the input folder (or equal to it) must not feed a rerun."""
    name = path.name
    ours = name.endswith(("_mask.png", "_overlay.png")) or (
        "_probs_" in name and path.suffix == ".tif"
    )
    ours |= path.suffix == ".png" and path.parent.parent.name in (LABELS, LABELS_AXONS)
    return ours and path.resolve().is_relative_to(output.resolve())


def relative_stem(path: Path, root: Path) -> Path:
    """Where `path`'s outputs go under the output folder: its sub-folder under `root` + stem."""
    parent = path.parent.relative_to(root) if root.is_dir() else Path()
    return parent / path.stem


def check_stems(paths: list[Path], folder: Path) -> None:
    """Raise ValueError listing names whose outputs would overwrite each other (a.tif, a.png)."""
    seen: dict[Path, list[str]] = {}
    for path in paths:
        seen.setdefault(relative_stem(path, folder), []).append(str(path.relative_to(folder)))
    clashes = [names for names in seen.values() if len(names) > 1]
    if clashes:
        raise UsageError(
            f"{folder}: images share a name and would overwrite each other's outputs: {clashes}; "
            "rename or move them"
        )


def check_label_names(paths: list[Path]) -> None:
    """Raise ValueError naming images whose label copies would overwrite each other: a copy is
    named by the image's folder (condition) and stem (number) only, as the lab's tree pairs them."""
    seen: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        seen.setdefault((path.resolve().parent.name, path.stem), []).append(str(path))
    clashes = [names for names in seen.values() if len(names) > 1]
    if clashes:
        raise UsageError(
            f"labels=true: images share a folder name and stem, so their label copies would "
            f"overwrite each other: {clashes}; predict them in separate runs"
        )


def predict(cfg: DictConfig) -> PredictResult:
    """Write `<stem>_mask.png`, `<stem>_overlay.png` [, `<stem>_probs_<class>.tif`] per image, then
    morphometrics.csv and failures.csv into `cfg.output`."""
    if cfg.get("input") is None:
        raise UsageError("input is not set; pass input=<image file or folder of images>")
    root, output = Path(cfg.input), Path(cfg.output)
    found = list_images(root, recursive=True, skip=is_run_folder)
    paths = [p for p in found if not is_output(p, output)]
    if not paths:
        raise UsageError(
            f"{cfg.input}: no .tif/.png/.jpg images there or in its sub-folders; "
            "pass input=<file or folder>"
        )
    check_stems(paths, root if root.is_dir() else root.parent)
    if cfg.labels:
        check_label_names(paths)
        if cfg.palette.closing_radius:
            log.warning("palette closing_radius > 0: prepare will close the painted labels")
    loaded, task, threshold, device = load_model(cfg)
    label_settings = {
        "colors": OmegaConf.to_container(cfg.palette.colors, resolve=True),
        "prefix": cfg.labels_prefix,
        "with_axons": task.num_classes == 3,
    }
    rows: list[dict[str, int | float | str]] = []
    failures: list[dict[str, str]] = []
    for path in progress_bar(paths, "images", "image", enabled=cfg.progress):
        stem = relative_stem(path, root)
        name = (stem.parent / path.name).as_posix()  # the image, relative to input
        try:
            image = read_image(path)
        except (ValueError, OSError) as error:
            log.error("skipped %s: %s", name, error)
            failures.append({"image": name, "error": str(error)})
            continue
        probs, mask = segment(loaded.model, image, task, threshold, cfg, device)
        write_png(output / f"{stem}_mask.png", mask)
        write_png(
            output / f"{stem}_overlay.png",
            overlay(to_gray(image), mask, **OmegaConf.to_container(cfg.overlay)),
        )
        if cfg.save_probs:
            write_probs(output / stem.parent, stem.name, probs, task)
        if cfg.labels:
            folder, gray = path.resolve().parent.name, to_gray(image)
            write_label_copies(output, folder, path.stem, gray, mask, **label_settings)
        rows.append({"image": name} | measure_mask(mask, task.num_classes, cfg.min_neuron_px))
        log.info("%s: %d neurons", name, rows[-1]["neuron_count"])
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


@command("predict")
def main(cfg: DictConfig) -> None:
    """Entry point; exits with status 1 when any image could not be read."""
    if predict(cfg).failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
