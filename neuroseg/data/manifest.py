"""The prepared tree's `manifest.csv`: one schema for its rows, and one writer of whole trees.

`prepare` writes rows of this schema, the dataset reads them back typed by it, and tests and
benchmarks build their prepared trees with `write_prepared_tree`, so no copy of the column list
can drift from the others.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from neuroseg import io
from neuroseg.data.tiling import cut, tile_grid
from neuroseg.task import AXON, NEURON


@dataclass(frozen=True)
class ManifestRow:
    """One tile: its split, source image, place in the source and pixels per class.

    `px_axons` is None when the tree has no 3-class masks (written as an empty cell).
    """

    tile: str
    split: str
    condition: str
    source: str
    image_id: str
    row: int
    col: int
    y0: int
    x0: int
    height: int
    width: int
    source_height: int
    source_width: int
    px_background: int
    px_neurons: int
    px_axons: int | None

    def csv_row(self) -> dict[str, object]:
        """The row as `io.write_csv` takes it: None becomes an empty cell."""
        return {key: "" if value is None else value for key, value in asdict(self).items()}


MANIFEST_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(ManifestRow))
_HINTS = typing.get_type_hints(ManifestRow)
MANIFEST_INT_COLUMNS: tuple[str, ...] = tuple(
    name
    for name, hint in _HINTS.items()
    if hint is int or (isinstance(hint, types.UnionType) and int in typing.get_args(hint))
)


def pixel_counts(class_tile: np.ndarray, has_axons: bool) -> dict[str, int | None]:
    """Pixels per class of a tile's class map (0/1/2, or 0/1 without axons: px_axons None)."""
    neurons, axons = np.count_nonzero(class_tile == NEURON), np.count_nonzero(class_tile == AXON)
    return {
        "px_background": int(class_tile.size - neurons - axons),
        "px_neurons": int(neurons),
        "px_axons": int(axons) if has_axons else None,
    }


def write_manifest(path: Path, rows: Iterable[ManifestRow]) -> None:
    """`manifest.csv` of `rows`, columns in schema order, written atomically."""
    io.write_csv(path, [row.csv_row() for row in rows], MANIFEST_COLUMNS)


def write_prepared_tree(
    out_dir: Path,
    images: Iterable[Mapping[str, object]],
    rows: int = 2,
    cols: int = 2,
    axons: bool = True,
) -> Path:
    """A prepared tree as `prepare` lays it out, from in-memory images with known classes.

    Each item of `images` holds `split`, `condition`, `image_id`, `image` (H, W) uint8/uint16 and
    `classes` (H, W) uint8 in {0, 1, 2}. Every image is cut into `rows` x `cols` tiles written
    under `<split>/images`, `<split>/masks` (neurons 0/1) and, with `axons`, `<split>/masks_axons`.
    For tests and benchmarks, which need a tree without painting and reading labels.
    """
    out_dir = Path(out_dir)
    manifest = []
    for item in images:
        image, classes = np.asarray(item["image"]), np.asarray(item["classes"])
        split, image_id = str(item["split"]), str(item["image_id"])
        number = image_id.rsplit("_", 1)[-1]
        for tile in tile_grid(*image.shape, rows, cols):
            name = f"{image_id}_r{tile.row}c{tile.col}"
            tile_classes = cut(classes, tile)
            io.write_tiff(out_dir / split / "images" / f"{name}.tif", cut(image, tile))
            neurons = (tile_classes == NEURON).astype(np.uint8)
            io.write_png(out_dir / split / "masks" / f"{name}.png", neurons)
            if axons:
                io.write_png(out_dir / split / "masks_axons" / f"{name}.png", tile_classes)
            manifest.append(
                ManifestRow(
                    tile=name,
                    split=split,
                    condition=str(item["condition"]),
                    source=f"originals/{item['condition']}/{number}.tif",
                    image_id=image_id,
                    **asdict(tile),
                    source_height=image.shape[0],
                    source_width=image.shape[1],
                    **pixel_counts(tile_classes if axons else neurons, axons),
                )
            )
    write_manifest(out_dir / "manifest.csv", manifest)
    return out_dir
