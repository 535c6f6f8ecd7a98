"""report.html: its numbers are the CSVs' (parsed back from the page), its sentences are the
summary's, it references nothing outside itself, and it opens in a real browser; the thumbnails
draw directions in the measurement's own convention."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io as bytes_io
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hydra import compose, initialize
from omegaconf import DictConfig
from PIL import Image

from benchmarks.report_figure import find_browser, open_in_browser
from neuroseg import io
from neuroseg.analysis.orientation import axial_mean_deg, measure_axons
from neuroseg.analysis.report import run_analysis
from neuroseg.analysis.settings import analyze_settings
from neuroseg.data.sample_tree import make_dataset
from neuroseg.evaluation.settings import evaluation_settings
from neuroseg.inference.settings import inference_settings
from neuroseg.report.evaluation_page import ranked_examples, write_evaluation_report
from neuroseg.report.provenance import file_digest, yaml_ready
from neuroseg.report.settings import ReportSettings
from neuroseg.report.tables import csv_table
from neuroseg.report.thumbnails import (
    analysis_thumbnail,
    axis_lines,
    shrink_classes,
    stretched_gray,
)
from neuroseg.task import get_task

IN_CI = os.environ.get("CI") == "true"
# CI installs Debian's chromium (.ci/run): there a missing browser fails instead of skipping.
needs_browser = pytest.mark.skipif(
    find_browser() is None and not IN_CI, reason="needs chromium: apt-get install chromium"
)
PNG_URI = "data:image/png;base64,"
ReadReport = Callable[[str], Any]  # conftest's report_page: a page's tables, claims and cards


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """A shipped primary config with overrides, as its entry point would see it."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose(name, overrides=overrides)


def external_references(text: str, page: Any) -> list[str]:
    """Everything that would make the page reach outside itself: addresses that are neither
    inline images nor in-page anchors, tags that load resources, url()/@import in styles, and
    any scheme:// left once the data URIs are removed."""
    found = [a for a in page.addresses if not (a.startswith(PNG_URI) or a.startswith("#"))]
    loaders = {"script", "link", "iframe", "object", "embed", "base", "source", "video", "audio"}
    found += sorted(page.tags & loaders)
    styles = " ".join(page.styles) + " ".join(re.findall(r"<style>(.*?)</style>", text, re.S))
    found += re.findall(r"url\(|@import", styles)
    found += re.findall(
        r"\w+://[^\s\"'<>]*", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    )
    return found


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(raw tree, analyze output): 3 conditions x 3 images of 128x160 and one duplicate; some
    grid images too small for their grid to be found, so images are left out for two reasons."""
    raw = make_dataset(
        tmp_path_factory.mktemp("report") / "raw", per_condition=3, height=128, width=160,
        duplicates=1, seed=3, conditions=("200_2", "400_4", "empty"),
    )  # fmt: skip
    out = tmp_path_factory.mktemp("report") / "analysis"
    cfg = compose_config("analyze", [f"images={raw}", f"output={out}", "stats.min_units=2"])
    return raw, run_analysis(*analyze_settings(cfg))


def test_analysis_report_numbers_are_the_csvs(
    analysed: tuple[Path, Path], report_page: ReadReport
) -> None:
    _, out = analysed
    page = report_page((out / "report.html").read_text())
    for name in ("per_image.csv", "grids.csv", "conclusions.csv", "stats.csv", "segments.csv"):
        assert page.tables[name] == io.read_csv(out / name), name
    claims = [
        {k.replace("-", "_"): v for k, v in c.items() if not k.startswith("_")} for c in page.claims
    ]
    assert claims == io.read_csv(out / "conclusions.csv")  # every claim, in the file's order
    tested = [c for c in page.claims if c["p-value"]]
    assert tested and all(f"{float(c['effect']):+.2f}" in c["_sentence"] for c in tested)


def test_analysis_report_words_are_the_summary_words(
    analysed: tuple[Path, Path], report_page: ReadReport
) -> None:
    _, out = analysed
    page = report_page((out / "report.html").read_text())
    summary = [line.strip() for line in (out / "summary.txt").read_text().splitlines()]
    for claim in page.claims:
        assert claim["_sentence"].strip() in summary
        assert claim.get("_detail", "").strip() in summary + [""]
    notes = summary[summary.index("Notes:") + 1 :]
    warnings = [" ".join(w.split()) for w in page.warnings]
    assert notes and all(note in warnings for note in notes if note)
    assert any("may not be independent" in w for w in warnings)  # no plate table given


def test_analysis_report_shows_every_image_and_why_some_are_left_out(
    analysed: tuple[Path, Path], report_page: ReadReport
) -> None:
    _, out = analysed
    page = report_page((out / "report.html").read_text())
    rows = io.read_csv(out / "per_image.csv")
    assert [c["image"] for c in page.cards] == [r["image"] for r in rows]
    for card in page.cards:
        thumbnail = Image.open(bytes_io.BytesIO(decode_png(card["src"])))
        assert thumbnail.format == "PNG" and max(thumbnail.size) <= 360
    left_out = [r for r in rows if r["included"] == "False"]
    reasons = {r["excluded_reason"] for r in left_out}
    assert any(r.startswith("duplicate of") for r in reasons) and any(
        "no grid" in r for r in reasons
    )
    table = page.tables["left out"]
    assert [(r["image"], r["excluded_reason"]) for r in table] == [
        (r["image"], r["excluded_reason"]) for r in left_out
    ]
    assert [c["image"] for c in page.cards if c["left_out"] == "True"] == [
        r["image"] for r in left_out
    ]


def decode_png(uri: str) -> bytes:
    """The bytes of a data:image/png;base64 URI (which must be valid base64)."""
    assert uri.startswith(PNG_URI)
    return base64.b64decode(uri.removeprefix(PNG_URI), validate=True)


def test_analysis_report_references_nothing_outside_itself(
    analysed: tuple[Path, Path], report_page: ReadReport
) -> None:
    _, out = analysed
    text = (out / "report.html").read_text()
    page = report_page(text)
    assert external_references(text, page) == []
    assert len([a for a in page.addresses if a.startswith(PNG_URI)]) >= len(page.cards) + 1
    bad = '<img src="https://x.org/a.png"><link rel="stylesheet" href="s.css">'
    bad += '<p style="background: url(a.png)">see ftp://x.org/b</p><script></script>'
    found = external_references(bad, report_page(bad))
    assert {"https://x.org/a.png", "s.css", "link", "script", "url(", "ftp://x.org/b"} <= set(found)


def test_analysis_report_provenance(analysed: tuple[Path, Path], report_page: ReadReport) -> None:
    raw, out = analysed
    page = report_page((out / "report.html").read_text())
    inputs = {row["path"]: row for row in page.tables["inputs"]}
    files = sorted((raw / "originals").glob("*/*.tif")) + sorted((raw / "truth").glob("*/*.png"))
    assert set(inputs) == {str(path) for path in files}  # every image and mask read, once
    for path in files:
        row = inputs[str(path)]
        assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row["bytes"] == str(path.stat().st_size)
    config = yaml.safe_load(page.config)
    assert config["images"] == str(raw) and config["stats"]["min_units"] == 2
    assert (
        config["report"]["thumbnail_px"] == 360
        and config["conditions"]["empty"]["spacing_um"] is None
    )
    versions = {row["package"]: row["version"] for row in page.tables["versions"]}
    assert {"neuroseg", "torch", "numpy", "jinja2", "python"} <= set(versions)
    assert versions["numpy"] == np.__version__


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 75.0, 120.0])
def test_lattice_lines_run_at_the_angle_the_measurement_reads(angle_deg: float) -> None:
    rows, cols, cover = axis_lines(angle_deg, (96, 128), lines=4)
    mask = np.zeros((96, 128), np.uint8)
    mask[rows[cover > 0.5], cols[cover > 0.5]] = 2  # the drawn lines as an axon mask
    axons = measure_axons(mask)
    measured = axial_mean_deg(axons.directions_deg, axons.weights_px)
    assert abs((measured - angle_deg + 90.0) % 180.0 - 90.0) < 1.0
    assert len(axons.segments) >= 3  # several parallel lines, each inside the image


def test_shrinking_keeps_one_pixel_axons_and_stretches_gray() -> None:
    mask = np.zeros((8, 12), np.uint8)
    mask[0, 0] = 1  # a neuron pixel: block (0, 0) is a neuron
    mask[5, 5] = 2  # one axon pixel: block (1, 1) is an axon
    mask[6, 9], mask[7, 10] = 1, 2  # both in block (1, 2): the axon wins
    assert shrink_classes(mask, 2, 4).tolist() == [[1, 0, 0], [0, 2, 2]]
    assert shrink_classes(mask[:, :10], 2, 4).shape == (2, 3)  # edge blocks padded, not lost
    ramp = np.tile(np.arange(0, 4000, 10, dtype=np.uint16), (4, 1))  # (4, 400), 16-bit
    gray = stretched_gray(ramp, 2)
    assert gray.dtype == np.uint8 and gray.shape == (2, 200)
    assert gray[0, 0] == 0 and gray[0, -1] == 255 and np.all(np.diff(gray[0].astype(int)) >= 0)


def test_worst_and_best_images_by_mean_class_score() -> None:
    rows = [
        {"image_id": "a", "iou_neurons": "0.5", "iou_axons": "0.1"},  # 0.3
        {"image_id": "b", "iou_neurons": "0.9", "iou_axons": ""},  # 0.9: an absent class
        {"image_id": "c", "iou_neurons": "nan", "iou_axons": "nan"},  # no score: not ranked
        {"image_id": "d", "iou_neurons": "0.2", "iou_axons": "0.2"},  # 0.2
        {"image_id": "e", "iou_neurons": "0.6", "iou_axons": "0.4"},  # 0.5
    ]
    classes = ("background", "neurons", "axons")
    worst, best = ranked_examples(rows, "iou", classes, 2)
    assert [(r["image_id"], round(s, 6)) for r, s in worst] == [("d", 0.2), ("a", 0.3)]
    assert [r["image_id"] for r, _ in best] == ["b", "e"]
    worst, best = ranked_examples(rows, "iou", classes, 3)  # 4 ranked images: shared out
    assert [r["image_id"] for r, _ in worst] == ["d", "a"]
    assert [r["image_id"] for r, _ in best] == ["b", "e"]
    worst, best = ranked_examples(rows[:1], "iou", classes, 3)
    assert [r["image_id"] for r, _ in worst] == ["a"] and best == []


def test_tables_keep_the_files_cells_or_only_name_a_long_file(tmp_path: Path) -> None:
    rows = [
        {"image": f"{n}.tif", "C": f"{n / 3:.4g}", "note": 'a, "quoted" <cell>'} for n in range(5)
    ]
    io.write_csv(tmp_path / "t.csv", rows, ("image", "C", "note"))
    table = csv_table(tmp_path / "t.csv", "t", max_rows=5)
    assert table.inlined and table.columns == ["image", "C", "note"] and table.rows == rows
    short = csv_table(tmp_path / "t.csv", "t", max_rows=4)
    assert not short.inlined and short.rows == [] and short.total == 5
    kept = csv_table(tmp_path / "t.csv", "t", 5, keep=lambda r: r["image"] != "0.tif")
    assert kept.total == 4 and kept.rows == rows[1:]


def test_provenance_digests_and_settings_as_plain_values(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * (3 << 20))  # several read blocks
    digest = file_digest(path)
    assert (
        digest.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and digest.bytes == 3 << 20
    )
    settings = compose_report_settings()
    assert yaml_ready(settings)["colors"]["lattice"] == list(settings.colors.lattice)
    assert yaml_ready({"p": tmp_path, "t": (1, 2)}) == {"p": str(tmp_path), "t": [1, 2]}


def compose_report_settings() -> ReportSettings:
    """The shipped report settings, as analyze builds them."""
    return analyze_settings(compose_config("analyze", ["images=.", "output=."]))[0].report


def test_a_mistyped_report_setting_is_named_at_compose() -> None:
    with pytest.raises(Exception, match="thumbnail_px"):
        compose_config("analyze", ["images=.", "report.thumbnail_px=big"])
    with pytest.raises(ValueError, match="report.examples=-1"):
        analyze_settings(compose_config("analyze", ["images=.", "output=.", "report.examples=-1"]))


@pytest.fixture(scope="module")
def evaluated(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An evaluate output folder written by hand (per_image, summary, confusion matrix, one
    overlay per image and a per_fold.csv no template knows), and its report."""
    out = tmp_path_factory.mktemp("evaluated")
    ckpt = out / "model.ckpt"
    ckpt.write_bytes(b"not a real checkpoint")
    scores = {"img_a": ("0.8", "0.4"), "img_b": ("0.1", "0.3"), "img_c": ("0.9", "0.7")}
    rows = [
        {"image_id": i, "condition": "200_2", "iou_neurons": n, "iou_axons": a}
        for i, (n, a) in scores.items()
    ]
    io.write_csv(out / "per_image.csv", rows, ("image_id", "condition", "iou_neurons", "iou_axons"))
    columns = ("level", "condition", "class", "metric", "n", "mean", "std", "min", "max")
    stats = ("neurons", "iou", "3", "0.6", "0.36", "0.1", "0.9")
    summary = [
        dict(zip(columns, (level, cond, *stats), strict=True))
        for level in ("image", "tile") for cond in ("all", "200_2")
    ]  # fmt: skip
    io.write_csv(out / "summary.csv", summary, columns)
    matrix = [{"truth": "background", "pred_background": "9", "pred_neurons": "1"}]
    io.write_csv(out / "confusion_matrix.csv", matrix, ("truth", "pred_background", "pred_neurons"))
    io.write_csv(out / "per_fold.csv", [{"fold": "0", "iou": "0.5"}], ("fold", "iou"))
    for image_id in scores:
        io.write_png(out / "overlays" / f"{image_id}.png", np.full((64, 96, 3), 90, np.uint8))
    cfg = compose_config(
        "evaluate",
        [f"ckpt_path={ckpt}", f"data_dir={prepared_dir}", f"output={out}", "report.examples=1"],
    )
    metrics = {"test/iou_neurons": 0.55, "test/image_iou_neurons": 0.6, "threshold": 0.5}
    write_evaluation_report(
        inference_settings(cfg, "evaluate"), evaluation_settings(cfg), get_task("axons"), metrics
    )
    return out


def test_evaluation_report_numbers_examples_and_new_tables(
    evaluated: Path, prepared_dir: Path, report_page: ReadReport
) -> None:
    text = (evaluated / "report.html").read_text()
    page = report_page(text)
    assert page.tables["per_image.csv"] == io.read_csv(evaluated / "per_image.csv")
    assert page.tables["confusion_matrix.csv"] == io.read_csv(evaluated / "confusion_matrix.csv")
    assert page.tables["per_fold.csv"] == [{"fold": "0", "iou": "0.5"}]  # shown without a template
    summary = io.read_csv(evaluated / "summary.csv")
    # three tables (mean, per condition, per tile) of one file: every row, once
    assert sorted(map(str, page.tables["summary.csv"])) == sorted(map(str, summary))
    assert {"metric": "iou_neurons", "value": "0.55"} in page.tables[
        "Pooled over every pixel of the split"
    ]
    assert [c["image"] for c in page.cards] == ["img_b", "img_c"]  # worst (0.2), best (0.8)
    assert all(c["src"].startswith(PNG_URI) for c in page.cards)
    assert external_references(text, page) == []
    inputs = {Path(row["path"]).name for row in page.tables["inputs"]}
    test_tiles = [
        r["tile"] for r in io.read_csv(prepared_dir / "manifest.csv") if r["split"] == "test"
    ]
    assert {"model.ckpt", "manifest.csv", "splits.json"} | {
        f"{t}.tif" for t in test_tiles
    } <= inputs


@pytest.mark.browser
@needs_browser
def test_reports_open_in_a_real_browser_and_request_nothing(
    analysed: tuple[Path, Path], evaluated: Path, tmp_path: Path
) -> None:
    _, out = analysed
    shot = tmp_path / "analysis.png"
    assert open_in_browser(out / "report.html", shot, (1000, 7000)) == []  # the whole page
    drawn = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert drawn.shape == (7000, 1000, 3) and drawn.std() > 10  # drawn, not a blank page
    rose_blue = np.all(np.abs(drawn - (31, 119, 180)) < 12, axis=-1)
    assert rose_blue.sum() > 500  # the inline rose plots were decoded and drawn
    lattice_cyan = np.all(np.abs(drawn - (0, 230, 255)) < 60, axis=-1)
    assert lattice_cyan.sum() > 200  # and the thumbnails, with their lattice lines
    assert open_in_browser(evaluated / "report.html", tmp_path / "eval.png", (1000, 900)) == []
    # the check can fail: a page with an outside image is caught asking for it
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><img src="https://example.invalid/a.png">')
    assert open_in_browser(leaky, tmp_path / "leaky.png", (200, 200)) == [
        "https://example.invalid/a.png"
    ]


def test_every_template_ships_in_the_wheel() -> None:
    """pyproject's package-data names every template, so an installed neuroseg renders too."""
    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["neuroseg.report"]
    templates = root / "neuroseg" / "report" / "templates"
    names = [p.relative_to(templates.parent).as_posix() for p in templates.iterdir()]
    assert names and all(any(fnmatch.fnmatch(n, pat) for pat in patterns) for n in names)


def test_thumbnail_draws_axons_lattice_and_grid_map_boundary() -> None:
    settings = compose_report_settings()
    image = np.full((128, 192), 100, np.uint8)
    image[:, ::2] = 140  # some texture to stretch
    mask = np.zeros((128, 192), np.uint8)
    mask[60:62, 10:180] = 2  # a horizontal axon
    grid_map = np.zeros((128, 192), bool)
    grid_map[:, :96] = True  # pillars on the left half only
    plain_rgb = analysis_thumbnail(image, mask, None, settings, axon_value=2)
    drawn = analysis_thumbnail(image, mask, 30.0, settings, axon_value=2, grid_map=grid_map)
    assert drawn.shape == plain_rgb.shape == (128, 192, 3)  # already within thumbnail_px
    axon = plain_rgb[60, 100].astype(int)
    assert axon[0] > axon[1] + 50  # tinted red
    boundary = np.all(drawn == settings.colors.grid_map, axis=-1)
    assert boundary[:, 95].mean() > 0.9 and boundary[:, 100:].sum() == 0  # the map's edge
    assert (drawn != plain_rgb).any(axis=-1).sum() > boundary.sum() + 300  # and lattice lines
