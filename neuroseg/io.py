"""Reading and writing images, tables and JSON; every write is atomic (whole file or none)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from neuroseg.errors import InputError, MissingPathError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp sibling of `path` (same suffix: writers pick the format); renamed on exit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty temp sibling folder of `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            # Move the old tree aside first so a crash between the two renames loses nothing.
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_tiff(path: Path) -> np.ndarray:
    """Read a TIFF as stored (uint8 or uint16, 2-D gray or HxWx3); errors name the file."""
    try:
        array = tifffile.imread(path)
    except Exception as error:  # tifffile raises many types for corrupt files
        raise InputError(
            f"{path}: not a readable TIFF ({error}); re-export or remove it"
        ) from error
    return np.asarray(array)


def read_image(path: Path) -> np.ndarray:
    """Read a TIFF, PNG or JPEG as stored: (H, W) gray or (H, W, 3) RGB, uint8 or uint16."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        array = read_tiff(path)
    else:
        try:
            with Image.open(path) as image:
                image.load()
                if image.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA"):
                    image = image.convert("RGB")
                array = np.asarray(image)
        except (OSError, UnidentifiedImageError) as error:
            raise InputError(f"{path}: not a readable image ({error}); re-export it") from error
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise InputError(f"{path}: image of shape {array.shape}; expected (H, W) gray or (H, W, 3)")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path}: pixel type {array.dtype}; expected 8-bit or 16-bit integers")
    return array


def read_rgb(path: Path) -> np.ndarray:
    """Read a painted label (JPEG or PNG) as (H, W, 3) uint8 RGB; gray files are an error."""
    array = read_image(path)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise InputError(
            f"{path}: label must be an 8-bit RGB image, got shape {array.shape} {array.dtype}; "
            "export the painted label in colour"
        )
    return array


def to_gray(image: np.ndarray) -> np.ndarray:
    """Gray (H, W) of the same dtype; RGB is averaged (the lab's RGB copies are gray anyway)."""
    if image.ndim == 2:
        return image
    return image.astype(np.float32).mean(axis=-1).round().astype(image.dtype)


def scale_to_unit(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: uint8 / 255, uint16 / 65535; training and inference share it."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    raise ValueError(f"pixel type {image.dtype}: expected uint8 or uint16")


def write_tiff(path: Path, array: np.ndarray) -> None:
    """Write a TIFF atomically, zlib-compressed (lossless, byte-identical for identical input)."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp, array, compression="zlib", compressionargs={"level": 1}, metadata=None
        )


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an 8-bit or 16-bit gray or RGB PNG atomically (lossless: masks keep exact values)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG", compress_level=1)


def write_jpeg(path: Path, array: np.ndarray, quality: int = 90) -> None:
    """Write an RGB or gray JPEG atomically (only for painted-label copies, never for masks)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="JPEG", quality=quality)


def write_json(path: Path, data: object) -> None:
    """Write indented, key-sorted JSON atomically, so identical data gives identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file; a malformed one is reported with its path."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error}); delete or fix it") from None


def write_csv(path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> None:
    """Write rows as CSV with a fixed column order, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Read a CSV written by `write_csv` as a list of string dicts."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def list_images(
    folder: Path, recursive: bool = False, skip: Callable[[Path], bool] | None = None
) -> list[Path]:
    """Image files in `folder` (or `folder` itself if it is a file), sorted by path.

    `recursive` also looks in sub-folders, symlinked ones included (each real folder once),
    leaving out hidden files and folders and the folders for which `skip(folder)` is true.
    """
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise MissingPathError(f"{folder}: no such file or folder")
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    found, seen = [], set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        here = Path(top)
        if here.resolve() in seen:  # a symlink back up the tree
            dirs.clear()
            continue
        seen.add(here.resolve())
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (skip and skip(here / d))]
        found += [
            here / name
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        ]
    return sorted(found)
