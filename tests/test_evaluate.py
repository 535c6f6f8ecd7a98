"""evaluate: scores against an independent numpy computation, re-assembly, threshold tuning."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import torch
from hydra import compose, initialize
from omegaconf import DictConfig
from omegaconf.errors import ValidationError

from neuroseg import runtime
from neuroseg.data.transforms import normalize
from neuroseg.evaluate import evaluate
from neuroseg.evaluation.assembly import assemble_tiles
from neuroseg.evaluation.scoring import (
    best_threshold,
    class_scores,
    confusion_matrix,
    summarize,
    threshold_counts,
)
from neuroseg.evaluation.settings import evaluation_settings
from neuroseg.evaluation.threshold import ThresholdGrid, threshold_ranks, tune_threshold
from neuroseg.inference.folder import predict_folder
from neuroseg.inference.predictor import load_settings_model
from neuroseg.inference.settings import InferenceSettings, inference_settings, prediction_settings
from neuroseg.inference.window import probs_to_mask
from neuroseg.io import read_csv, read_image, read_tiff, scale_to_unit
from neuroseg.models.ternausnet import build_model
from neuroseg.task import get_task


def compose_evaluate(overrides: list[str]) -> DictConfig:
    """The shipped evaluate config with `overrides`."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("evaluate", overrides=overrides)


def centred_unet(num_classes: int, prepared_dir: Path | None) -> torch.nn.Module:
    """Random UNet11 whose output bias puts each channel's median logit on a test tile at 0.

    A random network otherwise predicts one class everywhere and every score is 0 or NaN.
    Without `prepared_dir` the network stays as initialised (for error-path tests).
    """
    torch.manual_seed(0)
    model = build_model("vgg11", num_classes, weights=None).eval()
    if prepared_dir is None:
        return model
    tile = sorted((prepared_dir / "test" / "images").glob("*.tif"))[0]
    with torch.no_grad():
        logits = model(torch.from_numpy(normalize(scale_to_unit(read_tiff(tile))))[None])
        model.final.bias -= logits.flatten(2).median(dim=2).values[0]
    return model


def write_lightning_checkpoint(path: Path, prepared_dir: Path) -> Path:
    """Centred binary UNet11 in the layout SegmentationModule saves (`model.` keys, hparams)."""
    model = centred_unet(1, prepared_dir)
    hparams = {"encoder": {"name": "vgg11", "weights": None}, "task": "binary", "threshold": None}
    state_dict = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state_dict, "hyper_parameters": hparams}, path)
    return path


LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint


def assembled_truth(prepared_dir: Path, image_id: str, mask_dir: str) -> np.ndarray:
    """Truth of one source image pasted from its prepared mask tiles, straight from manifest.csv."""
    rows = [row for row in read_csv(prepared_dir / "manifest.csv") if row["image_id"] == image_id]
    truth = np.full((int(rows[0]["source_height"]), int(rows[0]["source_width"])), 255, np.uint8)
    for row in rows:
        tile = read_image(prepared_dir / row["split"] / mask_dir / f"{row['tile']}.png")
        y0, x0 = int(row["y0"]), int(row["x0"])
        truth[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    return truth


def numpy_iou(truth: np.ndarray, pred: np.ndarray, class_id: int) -> float:
    """Jaccard of one class, NaN when the class is absent from both."""
    t, p = truth == class_id, pred == class_id
    union = (t | p).sum()
    return float((t & p).sum() / union) if union else math.nan


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-9


# ---- scoring: hand-computed answers ----


def test_confusion_matrix_and_scores_by_hand() -> None:
    truth = np.array([[0, 1, 1], [2, 2, 0]])
    pred = np.array([[0, 1, 0], [2, 1, 1]])
    matrix = confusion_matrix(truth, pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
    neurons = class_scores(matrix, 1)
    assert neurons["iou"] == pytest.approx(1 / 4) and neurons["dice"] == pytest.approx(2 / 5)
    assert neurons["precision"] == pytest.approx(1 / 3) and neurons["recall"] == pytest.approx(
        1 / 2
    )
    valid = np.array([[True, True, False], [False, False, False]])
    assert confusion_matrix(truth, pred, 3, valid).sum() == 2
    absent = class_scores(confusion_matrix(np.zeros((2, 2)), np.zeros((2, 2)), 2), 1)
    assert all(math.isnan(v) for v in absent.values())


def test_threshold_counts_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    prob = rng.random((20, 30)).astype(np.float32)
    truth = (rng.random((20, 30)) > 0.6).astype(np.uint8)
    thresholds = np.linspace(0.05, 0.95, 19)
    counts = threshold_counts(prob, truth, thresholds)
    for t, (tp, fp, fn) in zip(thresholds, counts, strict=True):
        pred = prob > t
        assert (tp, fp, fn) == (
            (pred & (truth == 1)).sum(),
            (pred & (truth == 0)).sum(),
            (~pred & (truth == 1)).sum(),
        )
    # A perfectly separating threshold wins: truth is prob > 0.5 exactly.
    t, iou = best_threshold([threshold_counts(prob, prob > 0.5, thresholds)], thresholds)
    assert t == pytest.approx(0.5) and iou == pytest.approx(1.0)


def test_summarize_per_condition() -> None:
    rows = [
        {"condition": "a", "iou_neurons": 0.2},
        {"condition": "a", "iou_neurons": 0.4},
        {"condition": "b", "iou_neurons": float("nan")},
    ]
    rows = [
        row | {"dice_neurons": 0.0, "precision_neurons": 0.0, "recall_neurons": 0.0} for row in rows
    ]
    summary = summarize(rows, ("background", "neurons"), "image")
    iou = {row["condition"]: row for row in summary if row["metric"] == "iou"}
    assert iou["all"]["n"] == 2 and iou["all"]["mean"] == pytest.approx(0.3)
    assert iou["a"]["std"] == pytest.approx(0.1) and iou["a"]["max"] == pytest.approx(0.4)
    assert iou["b"]["n"] == 0 and math.isnan(iou["b"]["mean"])


# ---- re-assembly and end-to-end ----


def test_reassembled_tiles_equal_the_source(prepared_dir: Path, raw_dir: Path) -> None:
    rows = read_csv(prepared_dir / "manifest.csv")
    for image_id in sorted({row["image_id"] for row in rows}):
        tiles = [row for row in rows if row["image_id"] == image_id]
        origins = [(int(r["y0"]), int(r["x0"])) for r in tiles]
        split_dirs = [prepared_dir / r["split"] / "images" for r in tiles]
        arrays = [read_tiff(d / f"{r['tile']}.tif") for d, r in zip(split_dirs, tiles, strict=True)]
        shape = (int(tiles[0]["source_height"]), int(tiles[0]["source_width"]))
        image, covered = assemble_tiles(origins, arrays, *shape)
        assert covered.all()
        np.testing.assert_array_equal(image, read_tiff(raw_dir / tiles[0]["source"]))
        source = Path(tiles[0]["source"])
        truth = read_image(raw_dir / "truth" / source.parent.name / f"{source.stem}.png")
        masks = assembled_truth(prepared_dir, image_id, "masks_axons")
        # Painted JPEG labels blur stroke edges: masks match the synthetic truth almost everywhere.
        assert (masks == truth).mean() > 0.97


def test_evaluate_matches_numpy_from_written_masks(
    prepared_dir: Path,
    tmp_path: Path,
    write_legacy_checkpoint: LegacyWriter,
    report_page: Callable[[str], Any],
) -> None:
    """Original 3-class checkpoint; every written number is recomputed from the written masks."""
    ckpt = write_legacy_checkpoint(centred_unet(3, prepared_dir), tmp_path / "unet11_axons.pth")
    out = tmp_path / "eval"
    cfg = compose_evaluate(
        [f"ckpt_path={ckpt}", "encoder=vgg11", "task=axons", f"data_dir={prepared_dir}"]
        + [f"output={out}", "device=cpu"]
    )
    metrics = evaluate(cfg)
    for name in ("per_image.csv", "per_tile.csv", "summary.csv", "confusion_matrix.csv"):
        assert (out / name).is_file(), name
    assert list(out.glob("events.out.tfevents.*"))
    manifest = {r["tile"]: r for r in read_csv(prepared_dir / "manifest.csv")}
    per_image = read_csv(out / "per_image.csv")
    test_ids = {r["image_id"] for r in manifest.values() if r["split"] == "test"}
    assert {row["image_id"] for row in per_image} == test_ids
    classes = ((1, "neurons"), (2, "axons"))
    total = np.zeros((3, 3), dtype=np.int64)
    masks = {}
    for row in per_image:
        pred = read_image(out / "masks" / f"{row['image_id']}.png")
        truth = assembled_truth(prepared_dir, row["image_id"], "masks_axons")
        masks[row["image_id"]] = pred
        assert pred.shape == truth.shape and set(np.unique(pred)) <= {0, 1, 2}
        assert read_image(out / "overlays" / f"{row['image_id']}.png").shape == (*truth.shape, 3)
        for class_id, name in classes:
            assert same(float(row[f"iou_{name}"]), numpy_iou(truth, pred, class_id))
            tp = ((pred == class_id) & (truth == class_id)).sum()
            assert same(float(row[f"recall_{name}"]), tp / (truth == class_id).sum())
            assert same(float(row[f"precision_{name}"]), tp / (pred == class_id).sum())
        total += np.array(
            [[((truth == t) & (pred == p)).sum() for p in range(3)] for t in range(3)]
        )
    matrix = read_csv(out / "confusion_matrix.csv")
    columns = ("pred_background", "pred_neurons", "pred_axons")
    assert [[int(r[c]) for c in columns] for r in matrix] == total.tolist()
    for row in read_csv(out / "per_tile.csv"):
        tile = manifest[row["tile"]]
        y0, x0, h, w = (int(tile[k]) for k in ("y0", "x0", "height", "width"))
        pred = masks[row["image_id"]][y0 : y0 + h, x0 : x0 + w]
        truth = read_image(prepared_dir / "test" / "masks_axons" / f"{row['tile']}.png")
        for class_id, name in classes:
            assert same(float(row[f"iou_{name}"]), numpy_iou(truth, pred, class_id))
    for _, name in classes:
        values = [float(row[f"iou_{name}"]) for row in per_image]
        assert 0 < np.nanmean(values) < 1  # the centred model predicts some of each class
        assert same(metrics[f"test/image_iou_{name}"], float(np.nanmean(values)))
    for class_id, name in classes:  # pooled over every pixel of the split: the summed matrix
        tp = total[class_id, class_id]
        union = total[class_id].sum() + total[:, class_id].sum() - tp
        assert same(metrics[f"test/iou_{name}"], tp / union)
    summary = read_csv(out / "summary.csv")
    assert {row["class"] for row in summary} == {"neurons", "axons"}
    assert {row["level"] for row in summary} == {"image", "tile"}
    page = report_page((out / "report.html").read_text())  # the same numbers, on one page
    assert page.tables["per_image.csv"] == per_image
    assert sorted(map(str, page.tables["summary.csv"])) == sorted(map(str, summary))
    pooled = {r["metric"]: r["value"] for r in page.tables["Pooled over every pixel of the split"]}
    assert float(pooled["iou_axons"]) == pytest.approx(metrics["test/iou_axons"], rel=1e-3)
    assert {card["image"] for card in page.cards} == test_ids  # 2 images: one worst, one best


def test_tuned_threshold_is_written_and_used(
    prepared_dir: Path, raw_dir: Path, tmp_path: Path
) -> None:
    ckpt = write_lightning_checkpoint(tmp_path / "binary.ckpt", prepared_dir)
    common = [f"ckpt_path={ckpt}", f"data_dir={prepared_dir}", "device=cpu", "split=val"]
    tuned = evaluate(compose_evaluate([*common, f"output={tmp_path / 'a'}", "tune_threshold=true"]))
    sidecar = json.loads((tmp_path / "binary.ckpt.threshold.json").read_text())
    assert sidecar["threshold"] == tuned["threshold"]
    assert np.isclose(np.linspace(0.05, 0.95, 19), sidecar["threshold"]).any()
    # Scoring val with the tuned threshold reproduces the tuned IoU.
    assert tuned["val/image_iou_neurons"] == pytest.approx(sidecar["val_iou"])
    # predict uses the sidecar too.
    source = next((raw_dir / "originals").rglob("*.tif"))
    out = tmp_path / "pred"
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "predict",
            [
                f"ckpt_path={ckpt}",
                f"input={source}",
                f"output={out}",
                "save_probs=true",
                "device=cpu",
            ],
        )
    predict_folder(inference_settings(cfg, "predict"), prediction_settings(cfg))
    probs = tifffile.imread(out / f"{source.stem}_probs_neurons.tif")
    mask = read_image(out / f"{source.stem}_mask.png")
    np.testing.assert_array_equal(mask, probs > sidecar["threshold"])


def test_bad_evaluate_inputs(
    prepared_dir: Path, tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    with pytest.raises(ValueError, match="ckpt_path"):
        evaluate(compose_evaluate([f"data_dir={prepared_dir}", f"output={tmp_path}"]))
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        evaluate(compose_evaluate([f"ckpt_path={tmp_path / 'missing.ckpt'}", f"output={tmp_path}"]))
    ckpt = write_legacy_checkpoint(centred_unet(3, None), tmp_path / "axons.pth")
    common = [f"ckpt_path={ckpt}", f"data_dir={prepared_dir}", f"output={tmp_path}", "device=cpu"]
    common += ["encoder=vgg11", "task=axons"]
    with pytest.raises(ValueError, match="binary"):
        evaluate(compose_evaluate([*common, "tune_threshold=true"]))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        evaluate(compose_evaluate([*common, f"data_dir={tmp_path / 'nowhere'}"]))


# ---- tuning on the scored split predicts it once ----


def test_threshold_ranks_give_every_grid_mask() -> None:

    thresholds = np.linspace(0.05, 0.95, 19)
    # Each grid value as float32 and its float32 neighbours: where rounding could split the two.
    at = thresholds.astype(np.float32)
    values = np.concatenate([np.nextafter(at, np.float32(0)), at, np.nextafter(at, np.float32(1))])
    probs = np.concatenate([values, np.float32([0.0, 0.5, 1.0])])[None, None].astype(np.float32)
    ranks = threshold_ranks(probs, thresholds)
    assert ranks.dtype == np.uint8 and ranks.shape == probs.shape[1:]
    for t in thresholds:
        level = np.count_nonzero(thresholds <= t)
        np.testing.assert_array_equal(ranks >= level, probs_to_mask(probs, float(t)) == 1)


def test_tuning_on_val_predicts_each_val_tile_once(
    prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    forwarded: list[int] = []  # batch size of each forward pass

    def counting_load_model(settings: InferenceSettings) -> tuple:
        loaded, *rest = load_settings_model(settings)
        loaded.model.register_forward_hook(lambda _m, args, _out: forwarded.append(len(args[0])))
        return (loaded, *rest)

    monkeypatch.setattr("neuroseg.evaluation.evaluator.load_settings_model", counting_load_model)
    ckpt = write_lightning_checkpoint(tmp_path / "binary.ckpt", prepared_dir)
    overrides = [f"ckpt_path={ckpt}", f"data_dir={prepared_dir}", "device=cpu", "split=val"]
    evaluate(compose_evaluate([*overrides, f"output={tmp_path / 'out'}", "tune_threshold=true"]))
    val_tiles = [row for row in read_csv(prepared_dir / "manifest.csv") if row["split"] == "val"]
    assert val_tiles and sum(forwarded) == len(val_tiles)
    assert len(read_csv(tmp_path / "out" / "per_tile.csv")) == len(val_tiles)


@pytest.fixture(scope="module")
def fitted_ckpt(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Binary UNet11 whose final 1x1 conv is least-squares fitted to train tile masks.

    Unlike the centred random model (best threshold always the lowest, probabilities near 0.5),
    its val IoU peaks inside the grid and its probabilities fill every grid interval, so
    masks at neighbouring thresholds differ.
    """
    model = centred_unet(1, prepared_dir)
    features: list[torch.Tensor] = []
    model.final.register_forward_hook(lambda _m, args, _out: features.append(args[0][0]))
    targets = []
    for tile in sorted((prepared_dir / "train" / "images").glob("*.tif"))[:8]:
        with torch.no_grad():
            model(torch.from_numpy(normalize(scale_to_unit(read_tiff(tile))))[None])
        targets.append(read_image(prepared_dir / "train" / "masks" / f"{tile.stem}.png").ravel())
    x = torch.cat([f.flatten(1).T for f in features]).double()
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    y = torch.from_numpy(np.concatenate(targets) * 8.0 - 4.0)[:, None]  # logits of -4 / +4
    solution = torch.linalg.lstsq(x, y).solution.float()
    with torch.no_grad():
        model.final.weight.copy_(solution[:-1].T.reshape(model.final.weight.shape))
        model.final.bias.copy_(solution[-1])
    path = tmp_path_factory.mktemp("fitted") / "fitted.ckpt"
    checkpoint = torch.load(write_lightning_checkpoint(path, prepared_dir))
    checkpoint["state_dict"] = {f"model.{key}": v for key, v in model.state_dict().items()}
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    "postprocess",
    [[], ["postprocess.min_object_px=5", "postprocess.fill_holes=true"]],
    ids=["raw", "postprocessed"],
)
def test_one_pass_tuning_equals_tuning_then_scoring(
    prepared_dir: Path, fitted_ckpt: Path, tmp_path: Path, postprocess: list[str]
) -> None:
    """tune_threshold=true split=val writes the bytes of a second run given the tuned threshold."""
    ckpt = tmp_path / "fitted.ckpt"  # its own copy: tuning writes a sidecar next to it
    ckpt.write_bytes(fitted_ckpt.read_bytes())
    common = [f"ckpt_path={ckpt}", f"data_dir={prepared_dir}", "device=cpu", "split=val"]
    common += postprocess
    one, two = tmp_path / "one", tmp_path / "two"
    tuned = evaluate(compose_evaluate([*common, f"output={one}", "tune_threshold=true"]))
    # Inside the grid and not the default: a mask off by one grid step, or cut at 0.5, differs.
    assert 0.05 < tuned["threshold"] < 0.95 and tuned["threshold"] != 0.5
    assert tuned["val/image_iou_neurons"] > 0.5
    evaluate(compose_evaluate([*common, f"output={two}", f"threshold={tuned['threshold']!r}"]))

    def written(folder: Path) -> list[Path]:
        files = [p.relative_to(folder) for p in folder.rglob("*") if p.is_file()]
        return sorted(p for p in files if not p.name.startswith("events.out.tfevents"))

    names = written(one)
    assert names == written(two)
    assert {p.parts[0] for p in names} == {
        "per_image.csv",
        "per_tile.csv",
        "summary.csv",
        "confusion_matrix.csv",
        "masks",
        "overlays",
        "report.html",
    }
    for name in names:  # the report records each run's own settings and time
        if name != Path("report.html"):
            assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert read_image(one / next(p for p in names if p.parts[0] == "masks")).any()


@pytest.mark.parametrize(
    "grid", [{"start": -0.1, "stop": 0.9, "num": 5}, {"start": 0.1, "stop": 1.5, "num": 3}]
)
def test_threshold_grid_outside_0_1_is_refused(grid: dict[str, float], tmp_path: Path) -> None:
    settings = InferenceSettings()
    with pytest.raises(ValueError, match=r"threshold_grid=.*choose thresholds in \[0, 1\]"):
        tune_threshold(
            None, tmp_path, get_task("binary"), settings, torch.device("cpu"), ThresholdGrid(**grid)
        )


def test_evaluate_resolves_precision_once_and_warns_in_its_own_words(
    prepared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(runtime, "_warned", set())
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    resolved = []
    resolve = runtime.resolve_precision
    monkeypatch.setattr(
        runtime, "resolve_precision", lambda *a, **k: resolved.append(a) or resolve(*a, **k)
    )
    ckpt = write_lightning_checkpoint(tmp_path / "binary.ckpt", prepared_dir)
    overrides = [f"ckpt_path={ckpt}", f"data_dir={prepared_dir}", "device=cpu", "precision=bf16"]
    with caplog.at_level("WARNING", logger="neuroseg.runtime"):
        metrics = evaluate(compose_evaluate([*overrides, f"output={tmp_path / 'out'}"]))
    assert len(read_csv(tmp_path / "out" / "per_tile.csv")) > 1 and "test/iou" in metrics
    assert len(resolved) == 1
    assert caplog.messages == [
        "evaluate: precision=bf16 asked, but this CPU has no native bf16; running in float32"
    ]


def test_a_mistyped_threshold_grid_value_is_named_before_loading(tmp_path: Path) -> None:
    cfg = compose_evaluate([f"output={tmp_path}", "threshold_grid.num=abc"])
    with pytest.raises(ValidationError, match="Integer") as caught:
        evaluation_settings(cfg)
    assert caught.value.full_key == "threshold_grid.num"
    grid = evaluation_settings(compose_evaluate([f"output={tmp_path}", "threshold_grid.num=5"]))
    assert grid.threshold_grid == ThresholdGrid(0.05, 0.95, 5)
