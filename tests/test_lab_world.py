"""The lab-style sample world: thin full truth beside sparse thick strokes, partial lattices,
true alignment from the centre lines, the raw-tree contract, determinism, the command."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize
from omegaconf import OmegaConf
from scipy import ndimage
from scipy.spatial import cKDTree

from neuroseg import io
from neuroseg.analysis.grid import grid_angle_deg
from neuroseg.cli import errors_reported
from neuroseg.data.lab_axons import DrawnAxon, Steering, concentration, grow
from neuroseg.data.lab_image import make_lab_image
from neuroseg.data.lab_lines import resample, truth_alignment
from neuroseg.data.lab_surface import Coverage
from neuroseg.data.sample_image import CONDITIONS
from neuroseg.data.sample_tree import TRUTH_COLUMNS, make_dataset
from neuroseg.errors import ChoiceError, UsageError
from neuroseg.synth import lab_style, synth, synth_config

REPO = Path(__file__).resolve().parents[1]


def style_with(*overrides: str):
    """The shipped lab style with `overrides` of conf/synth.yaml."""
    return lab_style(synth_config(["style=lab", *overrides]))


@pytest.fixture(scope="module")
def style():
    return style_with()


@pytest.fixture(scope="module")
def painted():
    """A 256 x 320 field of 400_4 with a third of its axons painted and the lattice on half."""
    look = style_with(
        "lab.paint.painted_share=[0.3,0.3]", "lab.lattice.partial_share=1.0",
        "lab.lattice.covered_share=[0.5,0.5]",
    )  # fmt: skip
    return make_lab_image(np.random.default_rng(3), 256, 320, "400_4", look), look


@pytest.mark.parametrize("condition", CONDITIONS)
def test_lab_image_shapes_dtypes_and_truth(style, condition: str) -> None:
    lab = make_lab_image(np.random.default_rng(0), 192, 256, condition, style)
    assert lab.image.shape == lab.classes.shape == lab.coverage.shape == (192, 256)
    assert lab.image.dtype == np.uint8 and lab.classes.dtype == np.uint8
    assert set(np.unique(lab.classes)) <= {0, 1, 2} and (lab.classes == 2).sum() > 100
    assert lab.coverage.dtype == bool and lab.painting.strokes.shape == (192, 256)
    assert not (lab.clustered & (lab.classes != 1)).any()
    if condition == "empty":
        assert lab.grid_angle_deg is None and not lab.coverage.any()
        assert lab.truth["covered_share"] == 0.0 and lab.truth["c_covered"] == ""
    else:
        spacing_um = float(condition.split("_")[1])
        assert lab.grid_spacing_px == pytest.approx(spacing_um / style.pixel_size_um, abs=1e-5)
        assert 0 <= lab.grid_angle_deg < 90
    assert 96 - 20 < lab.image.mean() < 118 + 20


def test_sixteen_bit_fields_use_the_range(style) -> None:
    lab = make_lab_image(np.random.default_rng(1), 64, 96, "200_4", style, bit_depth=16)
    assert lab.image.dtype == np.uint16 and lab.image.max() > 20000


def test_truth_axons_are_thin_but_painted_strokes_are_wide(painted) -> None:
    lab, look = painted
    axons = lab.classes == 2
    lines = np.concatenate([resample(a.points) for a in lab.axons])
    distance, _ = cKDTree(lines).query(np.argwhere(axons) + 0.5)
    assert distance.max() <= 1.25  # every truth pixel touches a centre line: 1-2 px wide
    assert axons.sum() / lab.truth["axon_length_px"] < 2.2
    strokes = lab.painting.strokes
    assert strokes.any()
    half = ndimage.distance_transform_edt(strokes)
    ridge = half[(half >= ndimage.maximum_filter(half, size=5)) & (half > 2)]
    assert 8 <= np.median(2 * ridge) <= 32  # 10-30 px strokes, measured at their middles


def test_fewer_axons_painted_than_drawn_and_strokes_lie_around_them(painted) -> None:
    lab, _ = painted
    drawn, marked = lab.truth["n_axons_drawn"], lab.truth["n_axons_painted"]
    assert 0 < marked < drawn and marked <= 0.3 * drawn + 10
    chosen = [a for a, p in zip(lab.axons, lab.painting.painted, strict=True) if p]
    centre = np.concatenate([resample(a.points) for a in chosen])
    distance, _ = cKDTree(centre).query(np.argwhere(lab.painting.strokes) + 0.5)
    assert np.quantile(distance, 0.99) < 25  # every stroke wraps a painted axon
    inside = [a.points[(a.points >= 0).all(1) & (a.points < (256, 320)).all(1)] for a in chosen]
    hits = [lab.painting.strokes[tuple(np.floor(p).astype(int).T)].mean() for p in inside if len(p)]
    assert np.median(hits) > 0.4  # most of a painted axon is inside its stroke, ends may not be


def test_partial_lattice_has_one_straight_boundary_and_peaks_on_its_side(painted) -> None:
    lab, _ = painted
    covered = lab.coverage
    assert 0.45 < covered.mean() < 0.55 and lab.truth["covered_share"] == pytest.approx(
        0.5, abs=0.01
    )
    edge = covered ^ ndimage.binary_erosion(covered, border_value=1)
    rows, cols = np.nonzero(edge)
    points = np.column_stack([rows, cols]).astype(float)
    points -= points.mean(axis=0)
    residual = np.linalg.svd(points, compute_uv=False)[-1] / np.sqrt(len(points))
    assert residual < 1.0  # the boundary pixels lie on one line
    assert ndimage.label(covered)[1] == 1 and ndimage.label(~covered)[1] == 1
    inside = ndimage.distance_transform_edt(covered)
    outside = ndimage.distance_transform_edt(~covered)
    for side, expect in ((inside, True), (outside, False)):
        row, col = np.unravel_index(np.argmax(side), side.shape)
        r0, c0 = np.clip([row - 48, col - 48], 0, [256 - 96, 320 - 96])
        window = lab.image[r0 : r0 + 96, c0 : c0 + 96]
        assert side[r0 : r0 + 96, c0 : c0 + 96].min() > 0  # wholly on that side
        found = grid_angle_deg(window, lab.grid_spacing_px, max_spacing_px=30.0)
        assert found.found == expect


def test_truth_alignment_by_hand() -> None:
    def line(angle_deg: float, row: float) -> DrawnAxon:
        t = np.arange(0, 60.0)[:, None]
        step = np.array([-np.sin(np.radians(angle_deg)), np.cos(np.radians(angle_deg))])
        return DrawnAxon(np.array([row, 5.0]) + t * step, 1.0, -10.0, "mesh", 0)

    hidden = np.zeros((100, 100), bool)
    covered = np.zeros((100, 100), bool)
    covered[:50] = True  # the top half is on the lattice
    axons = [line(0.0, 20.0), line(45.0, 95.0)]  # along the axis on top, diagonal below
    truth = truth_alignment(axons, hidden, covered, 0.0)
    assert truth["c_covered"] == pytest.approx(1.0) and truth["c_flat"] == pytest.approx(-1.0)
    assert truth["length_covered_px"] == pytest.approx(59, abs=0.5)
    assert truth["alignment_c"] == pytest.approx(0.0, abs=0.02)  # equal lengths in the field
    tilted = truth_alignment([line(10.0, 50.0)], hidden, covered, 0.0)
    assert tilted["alignment_c"] == pytest.approx(np.cos(np.radians(40)), abs=1e-3)
    hidden[:, :] = True  # under cells: nothing to measure
    assert truth_alignment(axons, hidden, covered, 0.0)["alignment_c"] == ""


def test_steered_growth_settles_to_the_planted_alignment() -> None:
    assert concentration(0.0) == 0.0
    kappa = concentration(0.5)
    noise = np.sqrt(2.0 / 100)
    steering = Steering(30.0, kappa, noise, Coverage(None, 0.0, 1.0))
    rng = np.random.default_rng(5)
    starts = np.zeros((400, 2))
    lines = grow(rng, starts, rng.uniform(0, 2 * np.pi, 400), np.full(400, 600.0), steering)
    steps = np.concatenate([np.diff(line[200:], axis=0) for line in lines])
    angle = np.degrees(np.arctan2(-steps[:, 0], steps[:, 1]))
    assert np.mean(np.cos(np.radians(4 * (angle - 30.0)))) == pytest.approx(0.5, abs=0.06)
    flat = Steering(30.0, kappa, noise, Coverage(None, 0.0, 0.0))  # pillars nowhere: free
    lines = grow(rng, starts, rng.uniform(0, 2 * np.pi, 400), np.full(400, 600.0), flat)
    steps = np.concatenate([np.diff(line[200:], axis=0) for line in lines])
    angle = np.degrees(np.arctan2(-steps[:, 0], steps[:, 1]))
    assert abs(np.mean(np.cos(np.radians(4 * (angle - 30.0))))) < 0.06


def test_lab_tree_follows_the_raw_contract(tmp_path: Path, style) -> None:
    raw = make_dataset(tmp_path / "raw", 1, 64, 96, duplicates=1, style="lab", lab=style)
    rows = io.read_csv(raw / "truth" / "images.csv")
    assert list(rows[0]) == list(TRUTH_COLUMNS) and len(rows) == 6
    for row in rows:
        condition, number = row["condition"], Path(row["image"]).stem
        assert row["style"] == "lab" and float(row["pixel_size_um"]) == style.pixel_size_um
        for tree in ("labels", "labels_axons"):
            assert io.read_rgb(raw / tree / condition / f"label_{number}.jpg").shape == (64, 96, 3)
        coverage = io.read_image(raw / "truth" / "grid" / condition / f"{number}.png")
        assert coverage.dtype == np.uint8 and set(np.unique(coverage)) <= {0, 1}
        assert coverage.mean() == pytest.approx(float(row["covered_share"]), abs=0.01)
        assert int(row["n_axons_painted"]) <= int(row["n_axons_drawn"])
    settings = io.read_json(raw / "truth" / "settings.json")
    assert settings["style"] == "lab" and settings["lab"] == dataclasses.asdict(style)


def test_same_seed_same_bytes(tmp_path: Path, style) -> None:
    def tree(name: str, seed: int) -> dict[str, bytes]:
        raw = make_dataset(
            tmp_path / name, 1, 64, 96, seed=seed, duplicates=0, style="lab", lab=style
        )
        return {str(p.relative_to(raw)): p.read_bytes() for p in raw.rglob("*") if p.is_file()}

    first, again, other = tree("a", 0), tree("b", 0), tree("c", 1)
    assert first == again
    assert first["originals/400_4/1.tif"] != other["originals/400_4/1.tif"]


def test_prepare_reads_a_lab_tree(tmp_path: Path, style) -> None:
    from neuroseg.prepare import prepare

    raw = make_dataset(tmp_path / "raw", 2, 192, 256, duplicates=0, style="lab", lab=style)
    out = tmp_path / "prepared"
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose("prepare", overrides=[f"raw_dir={raw}", f"out_dir={out}", "workers=1"])
    report = prepare(cfg)
    rows = io.read_csv(out / "manifest.csv")
    assert len({r["source"] for r in rows}) == 10
    assert report["unpaired"] == []
    masks = [io.read_image(p) for p in out.glob("*/masks_axons/*.png")]
    assert len(masks) == len(rows) and sum(int((m == 2).sum()) for m in masks) > 0


def test_synth_command_lab_style_and_a_wrong_style(tmp_path: Path, capsys) -> None:
    cfg = synth_config(["style=lab", f"out_dir={tmp_path}/raw", "per_condition=1"])
    cfg.height, cfg.width, cfg.duplicates = 64, 96, 0
    raw = synth(cfg)
    assert len(list(raw.glob("truth/grid/*/*.png"))) == 5
    wrong = synth_config(["style=lab-like", f"out_dir={tmp_path}/other"])
    with pytest.raises(SystemExit) as stop, errors_reported():
        synth(wrong)
    line = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "\n" not in line and "'clean', 'lab'" in line
    assert not (tmp_path / "other").exists()


def test_bad_lab_settings_name_the_fix(tmp_path: Path, style) -> None:
    with pytest.raises(UsageError, match="style=lab needs"):
        make_dataset(tmp_path / "raw", style="lab")
    with pytest.raises(ChoiceError, match="choose one of"):
        make_dataset(tmp_path / "raw", style="dirty")
    with pytest.raises(UsageError, match="pixel_size_um"):
        dataclasses.replace(style, pixel_size_um=0.0)


@pytest.mark.slow
def test_command_line_lab_style_and_wrong_style(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "neuroseg.synth", "per_condition=1", "height=64", "width=96"]
    base += [f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(
        [*base, "style=lab", f"out_dir={tmp_path}/raw"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "lab style" in done.stdout and (tmp_path / "raw" / "truth" / "grid").is_dir()
    wrong = subprocess.run(
        [*base, "style=labb", f"out_dir={tmp_path}/other"], cwd=REPO, capture_output=True, text=True
    )
    assert wrong.returncode == 2 and wrong.stderr.strip().count("\n") == 0
    assert "style='labb'" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_sample_helper_records_and_checks_the_lab_settings(tmp_path: Path, style) -> None:
    from neuroseg.data.sample import ensure_sample
    from neuroseg.data.settings import read_group_file

    palette = OmegaConf.to_container(read_group_file(REPO / "conf" / "palette" / "qlab.yaml"))
    synth_keys = {"per_condition": 1, "height": 64, "width": 96, "duplicates": 0}
    synth_keys |= {"style": "lab", "lab": style}
    prepare_keys = {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "rows": 1, "cols": 1}
    prepare_keys |= {"palette": palette, "workers": 1, "seed": 42}
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    assert ensure_sample(raw, prepared, synth_keys, prepare_keys) == prepared
    assert io.read_json(raw / "truth" / "settings.json")["style"] == "lab"
    ensure_sample(raw, prepared, synth_keys, prepare_keys)  # same settings: reused
    other = dataclasses.replace(style, margin_um=style.margin_um + 1)
    with pytest.raises(UsageError, match="margin_um"):
        ensure_sample(raw, prepared, synth_keys | {"lab": other}, prepare_keys)
