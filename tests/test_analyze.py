"""The analyze entry point on tiny synthetic trees: files, columns, layouts and bad inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize

from neuroseg import io
from neuroseg.analysis.conclusions import CONCLUSION_COLUMNS
from neuroseg.analysis.measure import IMAGE_COLUMNS, SEGMENT_COLUMNS, measure_all, pool
from neuroseg.analysis.report import run_analysis
from neuroseg.analysis.settings import AnalysisSettings, Condition, analyze_settings
from neuroseg.analysis.sources import find_sources
from neuroseg.analysis.stats import STATS_COLUMNS
from neuroseg.configs import settings
from neuroseg.data.sample_image import make_image


def run(output: Path, *overrides: str) -> Path:
    """Compose the shipped analyze config with overrides and run it into `output`."""
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("analyze", overrides=[f"output={output}", *overrides])
    return run_analysis(*analyze_settings(cfg))


def analysis_settings(*overrides: str) -> AnalysisSettings:
    """The shipped analyze settings with overrides, as neuroseg.analyze builds them."""
    with initialize(version_base="1.3", config_path="../conf"):
        return settings(AnalysisSettings, compose("analyze", overrides=["images=.", *overrides]))


def columns(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


@pytest.mark.slow
def test_raw_tree_end_to_end(raw_dir: Path, tmp_path: Path) -> None:
    output = run(tmp_path / "out", f"images={raw_dir}")
    rows = io.read_csv(output / "per_image.csv")
    assert columns(output / "per_image.csv") == list(IMAGE_COLUMNS)
    assert columns(output / "segments.csv") == list(SEGMENT_COLUMNS)
    assert columns(output / "stats.csv") == list(STATS_COLUMNS)
    truth = io.read_csv(raw_dir / "truth" / "images.csv")
    assert len(rows) == len(truth)  # duplicates are reported, not dropped
    assert {r["group"] for r in rows} == {"200_2", "200_4", "400_2", "400_4", "empty"}
    copies = {t["image"].removeprefix("originals/") for t in truth if t["duplicate_of"]}
    assert copies and {r["image"] for r in rows if r["duplicate_of"]} == copies
    assert all("duplicate" in r["note"] for r in rows if r["duplicate_of"])
    empty = [r for r in rows if r["group"] == "empty"]
    assert all(r["grid_angle"] == "" and "no grid" in r["note"] for r in empty)
    segments = io.read_csv(output / "segments.csv")
    assert segments and all(0 <= float(s["relative_deg"]) <= 45 for s in segments)
    tests = [r["test"] for r in io.read_csv(output / "stats.csv")]
    assert len(tests) == 5 + 4 + 3 and all(t.startswith("not tested") for t in tests)
    claims = io.read_csv(output / "conclusions.csv")
    assert columns(output / "conclusions.csv") == list(CONCLUSION_COLUMNS)
    assert [c["n_images"] for c in claims[:5]] == ["2"] * 5  # the duplicate is not counted
    summary = (output / "summary.txt").read_text()
    assert "empty: mean C not tested: 2 images, too few" in summary
    for name in ("rose_by_group", "rose_empty", "hist_200_2", "rose_400_4"):
        assert (output / f"{name}.png").stat().st_size > 1000


def test_plate_table_makes_plates_the_units(raw_dir: Path, tmp_path: Path) -> None:
    images = sorted(p.relative_to(raw_dir / "originals") for p in raw_dir.glob("originals/*/*"))
    table = tmp_path / "plates.csv"
    rows = [{"image": str(p.with_suffix("")), "plate": p.parent.name} for p in images]
    io.write_csv(table, rows, ("image", "plate"))  # one plate per condition, names without .tif
    output = run(tmp_path / "out", f"images={raw_dir}", f"plates={table}", "stats.min_units=1")
    claims = {(c["group"], c["reference"]): c for c in io.read_csv(output / "conclusions.csv")}
    aligned = claims["400_4", ""]
    assert (aligned["unit"], aligned["n_units"], aligned["n_images"]) == ("plate", "1", "2")
    assert claims["400_4", "empty"]["n_units"] == "2"
    assert "may not be independent" not in (output / "summary.txt").read_text()


def test_bad_plate_table_is_one_line_naming_it(raw_dir: Path, tmp_path: Path) -> None:
    table = tmp_path / "plates.csv"
    io.write_csv(table, [{"image": "200_2/1.tif", "plate": "A"}], ("image", "plate"))
    with pytest.raises(ValueError, match="plates.csv: image '200_2/2.tif' and 8 more not found"):
        run(tmp_path / "out", f"images={raw_dir}", f"plates={table}")
    io.write_csv(table, [{"name": "200_2/1.tif", "plate": "A"}], ("name", "plate"))
    with pytest.raises(ValueError, match="plates.csv: needs columns image,plate"):
        run(tmp_path / "out", f"images={raw_dir}", f"plates={table}")


def test_predicted_masks_in_a_flat_folder(tmp_path: Path) -> None:
    images, predicted = tmp_path / "plate", tmp_path / "pred"
    for number in (1, 2):
        synth = make_image(np.random.default_rng(number), 192, 256, "400_4")
        io.write_tiff(images / f"{number}.tif", synth.image)
        io.write_png(predicted / f"{number}_mask.png", synth.classes)
        io.write_png(predicted / f"{number}_overlay.png", np.zeros((192, 256, 3), np.uint8))
    output = run(tmp_path / "out", f"images={images}", f"masks={predicted}")
    rows = io.read_csv(output / "per_image.csv")
    assert [(r["image"], r["group"]) for r in rows] == [("1.tif", "plate"), ("2.tif", "plate")]
    assert all(float(r["axon_length_px"]) > 0 for r in rows)
    assert "matched no image" not in (output / "summary.txt").read_text()


def test_predicted_masks_per_condition_folder(raw_dir: Path, tmp_path: Path) -> None:
    masks = tmp_path / "pred"
    for truth in (raw_dir / "truth").glob("*/*.png"):
        (masks / truth.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(truth, masks / truth.parent.name / f"{truth.stem}_mask.png")
    sources, unused = find_sources(raw_dir, masks)
    assert len(sources) == len(list((raw_dir / "originals").glob("*/*.tif"))) and unused == []
    assert all(s.mask == masks / s.group / f"{s.image.stem}_mask.png" for s in sources)


def test_painted_labels_read_like_truth(raw_dir: Path, tmp_path: Path) -> None:
    cfg = analysis_settings()
    truth, _ = find_sources(raw_dir, None)
    painted, _ = find_sources(raw_dir, raw_dir / "labels_axons")
    assert [s.mask.name for s in painted[:2]] == ["label_1.jpg", "label_2.jpg"]
    for t, p in zip(measure_all(truth[:4], cfg), measure_all(painted[:4], cfg), strict=True):
        assert t.row["image"] == p.row["image"]
        assert p.row["axon_length_px"] == pytest.approx(t.row["axon_length_px"], rel=0.15)


def test_prepared_split_from_prepare(prepared_dir: Path, tmp_path: Path) -> None:
    output = run(tmp_path / "out", f"images={prepared_dir / 'test'}")
    manifest = {r["tile"]: r["condition"] for r in io.read_csv(prepared_dir / "manifest.csv")}
    rows = io.read_csv(output / "per_image.csv")
    assert rows and all(manifest[Path(r["image"]).stem] == r["group"] for r in rows)


def test_prepared_split_groups_by_manifest_column(tmp_path: Path) -> None:
    split = tmp_path / "prepared" / "test"
    rows = []
    for index, condition in enumerate(("200_2", "empty", "empty")):
        tile = f"{condition}_{index}_r0c0"
        synth = make_image(np.random.default_rng(index), 192, 256, condition)
        io.write_tiff(split / "images" / f"{tile}.tif", synth.image)
        io.write_png(split / "masks_axons" / f"{tile}.png", synth.classes)
        rows.append({"tile": tile, "split": "test", "condition": condition})
    io.write_csv(tmp_path / "prepared" / "manifest.csv", rows, ("tile", "split", "condition"))
    sources, _ = find_sources(split, None)
    assert sorted(s.group for s in sources) == ["200_2", "empty", "empty"]
    assert {s.group for s in find_sources(split, None, group_by="split")[0]} == {"test"}
    with pytest.raises(KeyError, match="manifest.csv"):
        run(tmp_path / "out2", f"images={split}", "group_by=plate_id")


def test_neuron_only_masks_are_reported_in_notes(tmp_path: Path) -> None:
    images, masks = tmp_path / "plate", tmp_path / "masks"
    synth = make_image(np.random.default_rng(0), 192, 256, "200_4")
    io.write_tiff(images / "1.tif", synth.image)
    io.write_png(masks / "1.png", (synth.classes == 1).astype(np.uint8))
    output = run(tmp_path / "out", f"images={images}", f"masks={masks}")
    (row,) = io.read_csv(output / "per_image.csv")
    assert "no axons in mask" in row["note"] and row["n_segments"] == "0"
    assert "neuron-only masks?" in (output / "summary.txt").read_text()


def test_image_without_mask_names_the_file(raw_dir: Path, tmp_path: Path) -> None:
    masks = tmp_path / "truth"
    shutil.copytree(raw_dir / "truth", masks)
    (masks / "400_2" / "2.png").unlink()
    with pytest.raises(FileNotFoundError, match="400_2/2.tif"):
        run(tmp_path / "out", f"images={raw_dir}", f"masks={masks}")


def test_unreadable_image_names_the_file(tmp_path: Path) -> None:
    images, masks = tmp_path / "plate", tmp_path / "masks"
    images.mkdir()
    (images / "7.tif").write_bytes(b"not a tiff")
    io.write_png(masks / "7.png", np.zeros((64, 96), np.uint8))
    with pytest.raises(ValueError, match="7.tif"):
        run(tmp_path / "out", f"images={images}", f"masks={masks}")


def test_mask_of_wrong_size_or_kind_names_the_file(tmp_path: Path) -> None:
    images, masks = tmp_path / "plate", tmp_path / "masks"
    io.write_tiff(images / "3.tif", np.zeros((64, 96), np.uint8))
    io.write_png(masks / "3.png", np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="3.png"):
        run(tmp_path / "out", f"images={images}", f"masks={masks}")
    io.write_png(masks / "3.png", np.full((64, 96), 255, np.uint8))  # the original's 0/255 masks
    with pytest.raises(ValueError, match="3.png: not a class-index mask"):
        run(tmp_path / "out", f"images={images}", f"masks={masks}")


def test_flat_masks_shared_by_two_groups_are_refused(raw_dir: Path, tmp_path: Path) -> None:
    masks = tmp_path / "flat"
    for truth in (raw_dir / "truth").glob("*/*.png"):
        io.write_png(masks / f"{truth.stem}_mask.png", io.read_image(truth))
    with pytest.raises(ValueError, match="1_mask.png: mask matches both"):
        run(tmp_path / "out", f"images={raw_dir}", f"masks={masks}")


def test_missing_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run(tmp_path / "out", f"images={tmp_path / 'nowhere'}")
    io.write_tiff(tmp_path / "plate" / "1.tif", np.zeros((64, 96), np.uint8))
    with pytest.raises(FileNotFoundError, match="no masks folder given"):
        run(tmp_path / "out", f"images={tmp_path / 'plate'}")


def test_grid_condition_without_found_grid_is_left_out_and_listed(tmp_path: Path) -> None:
    images, masks = tmp_path / "plate", tmp_path / "masks"
    samples = {"400_4/1.tif": "400_4", "400_4/2.tif": "empty", "empty/1.tif": "empty"}
    for seed, (name, drawn_as) in enumerate(samples.items()):
        synth = make_image(np.random.default_rng(seed), 192, 256, drawn_as)  # 400_4/2: flat
        io.write_tiff(images / name, synth.image)
        io.write_png(masks / name.replace(".tif", ".png"), synth.classes)
    output = run(tmp_path / "out", f"images={images}", f"masks={masks}", "pixel_size_um=0.2")
    rows = {r["image"]: r for r in io.read_csv(output / "per_image.csv")}
    missed = rows["400_4/2.tif"]
    assert missed["included"] == "False" and "no grid found" in missed["excluded_reason"]
    assert missed["axon_alignment"] == "" and missed["reference_deg"] == ""  # not vs the x axis
    assert rows["400_4/1.tif"]["included"] == "True" and rows["400_4/1.tif"]["grid_angle"] != ""
    assert float(rows["400_4/1.tif"]["expected_spacing_px"]) == pytest.approx(20.0)
    assert rows["empty/1.tif"]["included"] == "True" and rows["empty/1.tif"]["grid_angle"] == ""
    assert "400_4/2.tif (no grid found" in (output / "summary.txt").read_text()
    (detection,) = io.read_csv(output / "grids.csv")
    assert (detection["group"], detection["n_images"], detection["n_grid_found"]) == (
        "400_4",
        "2",
        "1",
    )
    assert detection["n_excluded"] == "1" and float(detection["detection_rate"]) == 0.5
    assert not (output / "segments.csv").read_text().count("400_4/2.tif")
    cfg = analysis_settings("pixel_size_um=0.2")
    groups = pool(measure_all(find_sources(images, masks)[0], cfg))
    assert groups["400_4"]["alignment"].size == 1  # only the image whose grid was found


def test_bad_pixel_size_names_the_setting(tmp_path: Path) -> None:
    images, masks = tmp_path / "plate", tmp_path / "masks"
    io.write_tiff(images / "400_4" / "1.tif", np.zeros((64, 96), np.uint8))
    io.write_png(masks / "400_4" / "1.png", np.zeros((64, 96), np.uint8))
    with pytest.raises(ValueError, match="pixel_size_um"):
        run(tmp_path / "out", f"images={images}", f"masks={masks}", "pixel_size_um=-1")


def test_grid_on_a_flat_plate_is_ignored_with_a_warning(tmp_path: Path) -> None:
    images, masks = tmp_path / "plate", tmp_path / "masks"
    synth = make_image(np.random.default_rng(3), 192, 256, "400_2")  # a lattice filed as empty
    io.write_tiff(images / "empty" / "1.tif", synth.image)
    io.write_png(masks / "empty" / "1.png", synth.classes)
    output = run(tmp_path / "out", f"images={images}", f"masks={masks}", "no_grid_reference_deg=5")
    (row,) = io.read_csv(output / "per_image.csv")
    assert row["grid_angle"] != "" and row["included"] == "True"
    assert float(row["reference_deg"]) == 5.0 and "ignored" in row["note"]
    assert "grid was found on 1 flat-plate images" in (output / "summary.txt").read_text()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("stats.alpha=abc", "stats.alpha=abc (Value 'abc' of type 'str' could not be converted"),
        ("grid.min_confidenc=3", "valid keys: min_spacing_px, max_spacing_px"),
        ("+axons.radius=3", "axons.radius: not a setting; choose from ['axon_value'"),
    ],
)
def test_misspelt_or_mistyped_setting_is_one_line_naming_the_key(
    tmp_path: Path, override: str, expected: str
) -> None:
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    command = [sys.executable, "-m", "neuroseg.analyze", f"images={tmp_path}", override]
    command.append(f"hydra.run.dir={tmp_path / 'run'}")
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert not (tmp_path / "run" / "per_image.csv").exists()


def test_settings_are_frozen_and_typed_from_the_shipped_config() -> None:
    settings_ = analysis_settings("pixel_size_um=0.25", "conditions=null")
    assert settings_.pixel_size_um == 0.25 and settings_.design == {}
    assert isinstance(settings_.grid.peak_radius_bins, int) and settings_.plots.bins == 9
    shipped = analysis_settings()
    assert shipped.design["empty"] == Condition(height_nm=None, spacing_um=None)
    assert shipped.design["200_2"].spacing_um == 2.0  # a quoted name stays a string key
    with pytest.raises(ValueError, match="stats.alternative: 'left'; choose one of"):
        analysis_settings("stats.alternative=left")
    with pytest.raises(FrozenInstanceError):
        shipped.stats.alpha = 0.1  # type: ignore[misc]


def test_a_condition_added_on_the_command_line_is_checked_when_built() -> None:
    added = analysis_settings("+conditions.300_2={height_nm:300,spacing_um:2}")
    assert added.design["300_2"] == Condition(height_nm=300.0, spacing_um=2.0)
    with pytest.raises(ValueError, match=r"conditions.300_2: no spacing_um; give all of"):
        analysis_settings("+conditions.300_2={height_nm:300}")
    with pytest.raises(ValueError, match=r"conditions.300_2.height_nm: 'tall' is not a float"):
        analysis_settings("+conditions.300_2={height_nm:tall,spacing_um:2}")
