"""Regular tile grids: which window of a source image each prepared tile holds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroseg.errors import UsageError

# The U-Nets halve their input five times, so 32 px a side is the smallest they take; smaller
# tiles would only be padded back up, and a bad grid could write millions of 1-pixel files.
MIN_TILE_PX = 32


@dataclass(frozen=True)
class Tile:
    """One window of a grid: position (row, col) in the grid, top-left (y0, x0) and size in px."""

    row: int
    col: int
    y0: int
    x0: int
    height: int
    width: int


def tile_grid(height: int, width: int, rows: int, cols: int) -> list[Tile]:
    """Row-major tiles of equal size covering a (height, width) image exactly, no overlap.

    Raises ValueError when the grid does not divide the size: unequal tiles would give the
    DataModule batches of mixed shapes, and dropping the leftover pixels would lose labels.
    """
    if rows < 1 or cols < 1:
        raise UsageError(f"tile grid {rows}x{cols}: set tiles.rows and tiles.cols to 1 or more")
    if height % rows or width % cols:
        raise UsageError(
            f"a {height}x{width} image does not split into {rows}x{cols} equal tiles; "
            f"choose tiles.rows dividing {height} and tiles.cols dividing {width}"
        )
    tile_h, tile_w = height // rows, width // cols
    return [
        Tile(row=r, col=c, y0=r * tile_h, x0=c * tile_w, height=tile_h, width=tile_w)
        for r in range(rows)
        for c in range(cols)
    ]


def check_tile_size(height: int, width: int, rows: int, cols: int) -> None:
    """Raise UsageError when a rows x cols grid cuts (height, width) below MIN_TILE_PX a side."""
    tile_h, tile_w = height // rows, width // cols
    if min(tile_h, tile_w) < MIN_TILE_PX:
        raise UsageError(
            f"tiles.rows={rows} tiles.cols={cols} cut a {height}x{width} image into "
            f"{tile_h}x{tile_w} px tiles, under the network's {MIN_TILE_PX} px input; use at most "
            f"{max(height // MIN_TILE_PX, 1)} rows and {max(width // MIN_TILE_PX, 1)} cols"
        )


def cut(array: np.ndarray, tile: Tile) -> np.ndarray:
    """The tile's window of an (H, W) or (H, W, C) array, as a contiguous copy of the same dtype."""
    if tile.y0 + tile.height > array.shape[0] or tile.x0 + tile.width > array.shape[1]:
        raise ValueError(f"{tile} reaches outside an array of shape {array.shape}")
    window = array[tile.y0 : tile.y0 + tile.height, tile.x0 : tile.x0 + tile.width]
    return np.ascontiguousarray(window)
