"""Which files predict reads and where its outputs go: a folder is searched with its sub-folders,
whose layout the outputs repeat, skipping earlier runs' outputs; names that would collide are
refused before any image is segmented."""

from __future__ import annotations

import logging
from pathlib import Path

from neuroseg.data.pairing import LABELS, LABELS_AXONS
from neuroseg.errors import UsageError
from neuroseg.io import list_images

log = logging.getLogger(__name__)


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


def find_images(root: Path, output: Path) -> list[Path]:
    """The images under `root` (a file, or a folder and its sub-folders) that predict segments:
    not earlier runs' outputs; refused when there are none or two would share outputs."""
    found = list_images(root, recursive=True, skip=is_run_folder)
    paths = [path for path in found if not is_output(path, output)]
    if not paths:
        raise UsageError(
            f"{root}: no .tif/.png/.jpg images there or in its sub-folders; "
            "pass input=<file or folder>"
        )
    check_stems(paths, root if root.is_dir() else root.parent)
    return paths
