"""Tile grids: positions by hand, exact cover, errors for sizes the grid does not divide."""

from __future__ import annotations

import numpy as np
import pytest

from neuroseg.data.tiling import Tile, cut, tile_grid


def test_two_by_two_grid_by_hand() -> None:
    assert tile_grid(192, 256, rows=2, cols=2) == [
        Tile(row=0, col=0, y0=0, x0=0, height=96, width=128),
        Tile(row=0, col=1, y0=0, x0=128, height=96, width=128),
        Tile(row=1, col=0, y0=96, x0=0, height=96, width=128),
        Tile(row=1, col=1, y0=96, x0=128, height=96, width=128),
    ]


def test_lab_size_gives_the_original_tiles() -> None:
    tiles = tile_grid(1536, 2048, rows=2, cols=2)
    assert {(t.height, t.width) for t in tiles} == {(768, 1024)}
    assert [(t.y0, t.x0) for t in tiles] == [(0, 0), (0, 1024), (768, 0), (768, 1024)]


def test_tiles_cover_every_pixel_once() -> None:
    image = np.arange(6 * 12, dtype=np.uint16).reshape(6, 12)
    tiles = tile_grid(6, 12, rows=3, cols=4)
    assert len(tiles) == 12
    pieces = np.concatenate([cut(image, t).ravel() for t in tiles])
    assert sorted(pieces.tolist()) == image.ravel().tolist()
    assert cut(image, tiles[5]).tolist() == [[27, 28, 29], [39, 40, 41]]  # row 1, col 1: y0 2, x0 3
    assert cut(image, tiles[5]).dtype == np.uint16


def test_cut_keeps_channels() -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[2:, 3:] = (255, 51, 255)
    corner = cut(rgb, tile_grid(4, 6, 2, 2)[3])
    assert corner.shape == (2, 3, 3)
    assert (corner == (255, 51, 255)).all()


@pytest.mark.parametrize(("height", "width", "match"), [(193, 256, "193x256"), (192, 255, "255")])
def test_size_the_grid_does_not_divide(height: int, width: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tile_grid(height, width, rows=2, cols=2)


def test_empty_grid_is_an_error() -> None:
    with pytest.raises(ValueError, match="tiles.rows"):
        tile_grid(64, 64, rows=0, cols=2)


def test_cut_outside_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        cut(np.zeros((4, 4)), Tile(row=0, col=0, y0=2, x0=0, height=4, width=4))
