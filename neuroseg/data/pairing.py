"""Pair originals with their painted labels, check they decode and fit, find repeated originals.

Pairing is by condition folder and number: `originals/<condition>/<n>.tif` goes with
`labels/<condition>/<anything>_<n>.jpg` (the number after the last underscore of the stem).
A number may have one JPEG and one PNG label (hand-painted and a corrected prediction):
`prefer_label` picks one, and the choice is reported.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from neuroseg import io
from neuroseg.data.split import natural_key
from neuroseg.data.tiling import tile_grid
from neuroseg.errors import InputError, MissingPathError, UsageError
from neuroseg.io import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

ORIGINALS, LABELS, LABELS_AXONS = "originals", "labels", "labels_axons"
# prefer_label -> the suffixes it keeps when one number has a JPEG and a PNG label.
LABEL_FORMATS = {"png": (".png",), "jpeg": (".jpg", ".jpeg")}


@dataclass(frozen=True)
class Source:
    """One usable original and its label files; paths are relative to the raw folder (posix)."""

    condition: str
    number: str
    original: str
    label: str
    label_axons: str | None = None

    @property
    def image_id(self) -> str:
        """`<condition>_<n>`, the unit the split works on."""
        return f"{self.condition}_{self.number}"


@dataclass
class Pairing:
    """What a raw folder holds: usable sources, files left unpaired (with why), files ignored."""

    sources: list[Source] = field(default_factory=list)
    unpaired: list[dict[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    chosen: list[dict[str, str]] = field(default_factory=list)
    repeated: dict[str, str] = field(default_factory=dict)  # folder link -> folder it repeats


def label_number(stem: str) -> str:
    """The pairing number of a label stem: the text after its last underscore ("label_7" -> "7")."""
    return stem.rsplit("_", 1)[-1]


def label_path(root: Path, tree: str, condition: str, number: str, prefix: str) -> Path:
    """`root/<tree>/<condition>/<prefix>_<number>.png`: where a label copy pairs with
    `originals/<condition>/<number>.tif` (the inverse of `label_number`)."""
    return Path(root) / tree / condition / f"{prefix}_{number}.png"


def choose_labels(
    labels: dict[tuple[str, str], list[str]], prefer_label: str, pairing: Pairing
) -> None:
    """Keep one of a JPEG and a PNG label of the same number, as `prefer_label` says; each choice
    goes to `pairing.chosen` (report.json). Any other repeat stays for pair_sources to refuse."""
    for key, files in labels.items():
        by_format = {
            name: [f for f in files if f.lower().endswith(suffixes)]
            for name, suffixes in LABEL_FORMATS.items()
        }
        if len(files) != 2 or any(len(found) != 1 for found in by_format.values()):
            continue
        kept = by_format[prefer_label][0]
        set_aside = next(f for f in files if f != kept)
        labels[key] = [kept]
        reason = f"prefer_label={prefer_label}"
        pairing.chosen.append({"path": kept, "over": set_aside, "reason": reason})


def scan_tree(raw_dir: Path, tree: str, pairing: Pairing) -> dict[tuple[str, str], list[str]]:
    """Image files of `raw_dir/tree/<condition>/` keyed by (condition, number).

    Symlinked condition folders are followed, each real folder once (as predict does), and a
    second link to one is listed in `pairing.repeated`. Files outside a condition folder, hidden
    files and non-image files go to `pairing.ignored`: nothing is dropped without a trace.
    """
    found: dict[tuple[str, str], list[str]] = {}
    root = raw_dir / tree
    files, repeats = io.walk_files(root)
    for link, first in repeats.items():
        pairing.repeated[link.relative_to(raw_dir).as_posix()] = first.relative_to(
            raw_dir
        ).as_posix()
    for path in sorted(files, key=lambda p: natural_key(p.as_posix())):
        relative = path.relative_to(raw_dir).as_posix()
        depth = len(path.relative_to(root).parts)
        # Hidden files (e.g. macOS "._1.tif" forks) are not images even when named like one.
        if path.suffix.lower() not in IMAGE_SUFFIXES or depth != 2 or path.name.startswith("."):
            pairing.ignored.append(relative)
            continue
        stem = path.stem if tree == ORIGINALS else label_number(path.stem)
        found.setdefault((path.parent.name, stem), []).append(relative)
    return found


def pair_sources(raw_dir: Path, prefer_label: str = "png") -> Pairing:
    """Pair the originals with their labels; list unpaired and ambiguous files.

    Needs `originals/` and `labels/`; `labels_axons/` is optional, but once it exists every
    original needs an axon label too (a prepared set has masks_axons for all tiles or none).
    Missing folders raise FileNotFoundError (both named at once); an empty originals/ and two
    files for one number are problems (they stop the run); unpaired files are listed and the
    original is left out. A JPEG and a PNG label of one number are one label: `prefer_label`
    ("png": the corrected copy, "jpeg": the hand-painted one) picks it.
    """
    if prefer_label not in LABEL_FORMATS:
        raise UsageError(f"prefer_label={prefer_label!r}; choose one of {sorted(LABEL_FORMATS)}")
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise MissingPathError(f"{raw_dir}: raw folder not found; set raw_dir to the lab's tree")
    missing = [str(raw_dir / tree) for tree in (ORIGINALS, LABELS) if not (raw_dir / tree).is_dir()]
    if missing:
        raise MissingPathError(
            f"{' and '.join(missing)}: folder missing; raw_dir needs "
            f"{ORIGINALS}/<condition>/<n>.tif and {LABELS}/<condition>/<name>_<n>.jpg"
        )
    pairing = Pairing()
    originals = scan_tree(raw_dir, ORIGINALS, pairing)
    if not originals:
        pairing.problems.append(
            f"{raw_dir / ORIGINALS}: no images in condition folders; expected "
            f"{ORIGINALS}/<condition>/<n>.tif"
        )
    trees = {LABELS: scan_tree(raw_dir, LABELS, pairing)}
    if (raw_dir / LABELS_AXONS).is_dir():
        trees[LABELS_AXONS] = scan_tree(raw_dir, LABELS_AXONS, pairing)
    for labels in trees.values():
        choose_labels(labels, prefer_label, pairing)
    for listing in (originals, *trees.values()):
        for key, files in listing.items():
            if len(files) > 1:
                pairing.problems.append(
                    f"{', '.join(files)}: more than one file for {key[0]} number {key[1]}; keep one"
                )
    for labels in trees.values():
        for key in sorted(set(labels) - set(originals), key=lambda k: natural_key("_".join(k))):
            for path in labels[key]:
                reason = f"no original {key[1]} in {ORIGINALS}/{key[0]}/"
                pairing.unpaired.append({"path": path, "reason": reason})
    for key in sorted(originals, key=lambda k: natural_key("_".join(k))):
        original = originals[key][0]
        missing = [tree for tree, labels in trees.items() if key not in labels]
        if missing:
            pairing.unpaired.append(
                {"path": original, "reason": f"no label in {' or '.join(missing)}/{key[0]}/"}
            )
            continue
        axons = trees.get(LABELS_AXONS, {}).get(key, [None])[0]
        pairing.sources.append(Source(key[0], key[1], original, trees[LABELS][key][0], axons))
    return pairing


def log_pairing(pairing: Pairing, duplicates: Mapping[str, str]) -> None:
    """Say on the console which files were left out and why (also written to report.json)."""
    for item in pairing.unpaired:
        log.warning("unpaired: %s (%s)", item["path"], item["reason"])
    for item in pairing.chosen:
        log.info("label chosen: %s over %s (%s)", item["path"], item["over"], item["reason"])
    for path, kept in duplicates.items():
        log.warning("duplicate dropped: %s has the same pixels as %s", path, kept)
    for path in pairing.ignored:
        log.warning("ignored: %s (not an image in a condition folder)", path)
    for link, first in pairing.repeated.items():
        log.warning("read once: %s is the same folder as %s", link, first)


def pixel_hash(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and pixels: equal only for exactly equal images."""
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def find_duplicates(hashes: Mapping[str, str]) -> dict[str, str]:
    """Map each repeated path to the first path (natural order) with the same pixel hash."""
    first: dict[str, str] = {}
    repeats: dict[str, str] = {}
    for path in sorted(hashes, key=natural_key):
        kept = first.setdefault(hashes[path], path)
        if kept != path:
            repeats[path] = kept
    return repeats


@dataclass(frozen=True)
class SourceCheck:
    """What reading one source found: size, pixel hash of the original, and any problems."""

    source: Source
    height: int
    width: int
    pixel_hash: str
    label_hashes: tuple[str, ...]
    problems: tuple[str, ...]
    colour: bool = False  # a true-colour RGB original, averaged to gray


def is_colour(image: np.ndarray) -> bool:
    """True for an (H, W, 3) image whose channels differ: real colour, not an RGB copy of gray."""
    return image.ndim == 3 and not (
        np.array_equal(image[..., 0], image[..., 1])
        and np.array_equal(image[..., 0], image[..., 2])
    )


def read_original(path: Path) -> np.ndarray:
    """The original as (H, W) uint8 or uint16; an RGB copy of a gray image is averaged to gray."""
    return io.to_gray(io.read_image(path))


def label_size(path: Path) -> tuple[int, int]:
    """(H, W) of a painted label after decoding it all, so truncated or corrupt files show up now.

    JPEGs decode at 1/8 scale here (the whole stream is still read): checking stays cheap and the
    full decode happens once, when the masks are made.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
            image.draft("RGB", (max(width // 8, 1), max(height // 8, 1)))
            image.load()
    except (OSError, UnidentifiedImageError) as error:
        raise InputError(f"{path}: not a readable image ({error}); re-export it") from error
    if mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):  # the modes io.read_rgb turns into RGB
        raise InputError(f"{path}: label has mode {mode}; export the painted label in colour (RGB)")
    return height, width


def check_source(raw_dir: Path, source: Source, rows: int, cols: int) -> SourceCheck:
    """Decode one original and its labels; collect every problem rather than stop at the first."""
    problems: list[str] = []
    original_path = raw_dir / source.original
    height = width = 0
    digest = ""
    colour = False
    try:
        stored = io.read_image(original_path)
        colour = is_colour(stored)
        image = io.to_gray(stored)
        height, width = image.shape
        digest = pixel_hash(image)
        tile_grid(height, width, rows, cols)
    except ValueError as error:
        message = str(error)
        problems.append(message if str(original_path) in message else f"{original_path}: {message}")
    label_hashes: list[str] = []
    for label in (source.label, source.label_axons):
        if label is None:
            continue
        label_path = raw_dir / label
        label_hashes.append(hashlib.sha256(label_path.read_bytes()).hexdigest())
        try:
            label_hw = label_size(label_path)
        except ValueError as error:
            problems.append(str(error))
            continue
        if height and label_hw != (height, width):
            problems.append(
                f"{label_path}: {label_hw[0]}x{label_hw[1]} but {original_path} is "
                f"{height}x{width}; re-export the label at the original's size"
            )
    return SourceCheck(source, height, width, digest, tuple(label_hashes), tuple(problems), colour)
