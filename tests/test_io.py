"""Atomic writes and image reading: whole files or none, errors that name the file."""

from pathlib import Path

import numpy as np
import pytest

from neuroseg import io
from neuroseg.task import get_task


def test_atomic_path_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    io.write_json(target, {"b": 1, "a": 2})
    io.write_json(target, {"a": 3})
    assert target.read_text() == '{\n  "a": 3\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_dir_keeps_old_tree_on_error(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), io.atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    assert (out / "keep.txt").read_text() == "old"


def test_atomic_dir_swaps_in_new_tree(tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with io.atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_and_png_round_trip_exactly(tmp_path: Path, dtype: type) -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, np.iinfo(dtype).max, size=(64, 96), dtype=dtype)
    io.write_tiff(tmp_path / "x.tif", array)
    io.write_png(tmp_path / "x.png", array)
    np.testing.assert_array_equal(io.read_image(tmp_path / "x.tif"), array)
    np.testing.assert_array_equal(io.read_image(tmp_path / "x.png"), array)


def test_tiff_bytes_are_deterministic(tmp_path: Path) -> None:
    array = np.arange(64 * 96, dtype=np.uint16).reshape(64, 96)
    io.write_tiff(tmp_path / "a.tif", array)
    io.write_tiff(tmp_path / "b.tif", array)
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()


def test_corrupt_tiff_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "7.tif"
    io.write_tiff(bad, np.zeros((64, 96), np.uint8))
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(ValueError, match="7.tif"):
        io.read_tiff(bad)


def test_read_rgb_rejects_gray_label(tmp_path: Path) -> None:
    path = tmp_path / "label_3.png"
    io.write_png(path, np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="label_3.png"):
        io.read_rgb(path)


def test_scale_to_unit_matches_bit_depths() -> None:
    eight = np.array([[0, 128, 255]], np.uint8)
    sixteen = eight.astype(np.uint16) * 257
    np.testing.assert_allclose(io.scale_to_unit(eight), io.scale_to_unit(sixteen), atol=1e-6)
    with pytest.raises(ValueError, match="float64"):
        io.scale_to_unit(np.zeros((2, 2)))


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = [{"tile": "200_2_1_r0c0", "split": "train"}, {"tile": "empty_3_r1c1", "split": "test"}]
    io.write_csv(tmp_path / "m.csv", rows, ["tile", "split"])
    assert io.read_csv(tmp_path / "m.csv") == rows


def test_list_images_sorted_and_missing_folder(tmp_path: Path) -> None:
    for name in ["b.tif", "a.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in io.list_images(tmp_path)] == ["a.png", "b.tif"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        io.list_images(tmp_path / "nowhere")


def test_tasks_and_unknown_task() -> None:
    assert get_task("binary").out_channels == 1
    assert get_task("axons").out_channels == 3
    assert get_task("axons").foreground == ("neurons", "axons")
    with pytest.raises(KeyError, match="binary"):
        get_task("cells")


def test_list_images_recursive_skips_hidden(tmp_path: Path) -> None:
    io.write_png(tmp_path / "b" / "2.png", np.zeros((4, 4), np.uint8))
    io.write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    io.write_png(tmp_path / ".cache" / "x.png", np.zeros((4, 4), np.uint8))
    io.write_png(tmp_path / "b" / ".partial.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    assert [p.name for p in io.list_images(tmp_path)] == ["a.png"]
    found = [p.relative_to(tmp_path).as_posix() for p in io.list_images(tmp_path, recursive=True)]
    assert found == ["a.png", "b/2.png"]
