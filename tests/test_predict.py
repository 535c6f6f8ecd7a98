"""predict: outputs per image, corrupt files skipped by name, original (legacy) checkpoints."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hydra import compose, initialize
from omegaconf import DictConfig

from neuroseg import runtime
from neuroseg.analysis.morphometrics import measure_mask, skeleton_length_px
from neuroseg.inference.overlay import overlay
from neuroseg.io import read_csv, read_image, write_png, write_tiff
from neuroseg.models.ternausnet import build_model
from neuroseg.predict import predict

REPO = Path(__file__).resolve().parents[1]


def compose_predict(overrides: list[str]) -> DictConfig:
    """The shipped predict config with `overrides`."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("predict", overrides=overrides)


LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint


def random_unet11(num_classes: int) -> torch.nn.Module:
    """Seeded random UNet11 in eval mode: written as an original checkpoint, kept for reference."""
    torch.manual_seed(0)
    return build_model("vgg11", num_classes, weights=None).eval()


def images_folder(folder: Path) -> dict[str, np.ndarray]:
    """8-bit TIFF, 16-bit PNG, RGB PNG (64x96) and a corrupt TIFF; returns the 8-bit gray image."""
    rng = np.random.default_rng(0)
    gray8 = rng.integers(0, 256, (64, 96), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, (64, 96), dtype=np.uint16)
    rgb = np.repeat(rng.integers(0, 256, (64, 96, 1), dtype=np.uint8), 3, axis=-1)
    write_tiff(folder / "a.tif", gray8)
    write_png(folder / "b.png", gray16)
    write_png(folder / "c.png", rgb)
    (folder / "broken.tif").write_bytes(b"this is not a TIFF")
    return {"a": gray8}


def original_probs(model: torch.nn.Module, gray8: np.ndarray) -> np.ndarray:
    """Probabilities the original way: gray x3 / 255, ImageNet mean/std, log-softmax."""
    rgb = np.repeat(gray8[..., None], 3, axis=-1).astype(np.float32) / 255.0
    rgb = (rgb - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32))[None]
    with torch.no_grad():
        return torch.exp(torch.log_softmax(model(x), dim=1))[0].numpy()


def test_legacy_checkpoint_folder_with_corrupt_file(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    model = random_unet11(3)
    write_legacy_checkpoint(model, tmp_path / "unet11_axons.pth")
    inputs = tmp_path / "in"
    inputs.mkdir()
    gray = images_folder(inputs)["a"]
    out = tmp_path / "out"
    cfg = compose_predict(
        [
            f"ckpt_path={tmp_path / 'unet11_axons.pth'}",
            "encoder=vgg11",
            "task=axons",
            f"input={inputs}",
            f"output={out}",
            "save_probs=true",
            "device=cpu",
        ]
    )
    result = predict(cfg)
    assert [f["image"] for f in result.failures] == ["broken.tif"]
    assert read_csv(out / "failures.csv")[0]["image"] == "broken.tif"
    for stem in ("a", "b", "c"):
        mask = read_image(out / f"{stem}_mask.png")
        assert mask.shape == (64, 96) and mask.dtype == np.uint8 and mask.max() <= 2
        assert read_image(out / f"{stem}_overlay.png").shape == (64, 96, 3)
    assert not (out / "broken_mask.png").exists()
    rows = read_csv(out / "morphometrics.csv")
    assert [row["image"] for row in rows] == ["a.tif", "b.png", "c.png"]
    assert rows[0]["axon_area_px"] != ""

    names = ("background", "neurons", "axons")
    probs = np.stack([tifffile.imread(out / f"a_probs_{name}.tif") for name in names])
    reference = original_probs(model, gray)
    assert probs.shape == (3, 64, 96) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, reference, atol=0.01)
    np.testing.assert_array_equal(read_image(out / "a_mask.png"), reference.argmax(axis=0))
    counts = measure_mask(read_image(out / "a_mask.png"), 3, cfg.min_neuron_px)
    assert {k: str(v) for k, v in counts.items()} == {k: rows[0][k] for k in counts}


def test_binary_threshold_override_and_postprocess(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    image = np.random.default_rng(1).integers(0, 256, (64, 96), dtype=np.uint8)
    write_tiff(tmp_path / "x.tif", image)
    common = [f"ckpt_path={tmp_path / 'unet11.pth'}", "encoder=vgg11", "task=binary"]
    common += [f"input={tmp_path / 'x.tif'}", "save_probs=true", "device=cpu"]
    out = tmp_path / "out"
    result = predict(compose_predict([*common, f"output={out}", "threshold=0.0"]))
    assert result.failures == [] and (read_image(out / "x_mask.png") == 1).all()
    assert result.rows[0]["axon_area_px"] == "" and result.rows[0]["neuron_count"] == 1
    probs = tifffile.imread(out / "x_probs_neurons.tif")
    assert probs.shape == (64, 96) and probs.dtype == np.float32 and 0 < probs.min() < 1
    assert sorted(p.name for p in out.glob("*_probs_*")) == ["x_probs_neurons.tif"]
    # The all-neuron mask is one object of 6144 px: removing objects under 10000 px empties it.
    cleaned = tmp_path / "clean"
    overrides = [f"output={cleaned}", "threshold=0.0", "postprocess.min_object_px=10000"]
    predict(compose_predict([*common, *overrides]))
    assert (read_image(cleaned / "x_mask.png") == 0).all()


def test_bad_inputs_name_the_problem(tmp_path: Path, write_legacy_checkpoint: LegacyWriter) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    ckpt = tmp_path / "unet11.pth"
    write_legacy_checkpoint(random_unet11(1), ckpt)
    with pytest.raises(ValueError, match="empty"):
        predict(compose_predict([f"ckpt_path={ckpt}", f"input={empty}", f"output={tmp_path}"]))
    write_tiff(tmp_path / "x.tif", np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="ckpt_path"):
        predict(compose_predict([f"input={tmp_path / 'x.tif'}", f"output={tmp_path}"]))
    with pytest.raises(ValueError, match="unet11.pth"):  # legacy without encoder/task
        predict(compose_predict([f"ckpt_path={ckpt}", f"input={tmp_path}", f"output={tmp_path}"]))
    write_png(tmp_path / "x.png", np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="x.png"):  # x.tif and x.png would share outputs
        predict(compose_predict([f"ckpt_path={ckpt}", f"input={tmp_path}", f"output={tmp_path}"]))


@pytest.mark.slow
def test_command_line_exits_nonzero_on_a_corrupt_file(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_tiff(inputs / "good.tif", np.zeros((64, 64), np.uint8))
    (inputs / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    command = [sys.executable, "-m", "neuroseg.predict", f"ckpt_path={tmp_path / 'unet11.pth'}"]
    command += [
        "encoder=vgg11",
        "task=binary",
        f"input={inputs}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "bad.jpg" in done.stdout + done.stderr
    assert (tmp_path / "run" / "good_mask.png").is_file()


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("overlap=abc", "could not be converted to Float"),
        ("window=[64,x]", "could not be converted to Integer"),
        ("tta=maybe", "is not a valid bool"),
    ],
)
def test_a_wrong_type_fails_at_compose_in_one_line_naming_the_key(
    tmp_path: Path, override: str, problem: str
) -> None:
    """Nothing is read or loaded: neither the checkpoint nor the input exists."""
    command = [sys.executable, "-m", "neuroseg.predict", f"ckpt_path={tmp_path / 'none.ckpt'}"]
    command += [f"input={tmp_path / 'none'}", f"hydra.run.dir={tmp_path / 'run'}", override]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"override {override} " in done.stderr and problem in done.stderr
    assert not (tmp_path / "run").exists()


def test_an_unknown_key_fails_in_one_line_listing_the_valid_keys(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "neuroseg.predict", f"ckpt_path={tmp_path / 'none.ckpt'}"]
    command += [f"hydra.run.dir={tmp_path / 'run'}", "windw=[64,96]", "postprocess.fill_holes=true"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "'windw'" in done.stderr and "valid keys: " in done.stderr
    listed = done.stderr.split("valid keys: ")[1].strip().split(", ")
    assert {"window", "overlap"} <= set(listed)


def test_predict_resolves_precision_once_and_warns_in_its_own_words(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(runtime, "_warned", set())
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    resolved = []
    resolve = runtime.resolve_precision
    monkeypatch.setattr(
        runtime, "resolve_precision", lambda *a, **k: resolved.append(a) or resolve(*a, **k)
    )
    write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    for name in ("a", "b", "c"):
        write_tiff(tmp_path / "in" / f"{name}.tif", np.zeros((64, 96), np.uint8))
    common = [f"ckpt_path={tmp_path / 'unet11.pth'}", "encoder=vgg11", "task=binary"]
    common += [f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "device=cpu"]
    with caplog.at_level("WARNING", logger="neuroseg.runtime"):
        result = predict(compose_predict([*common, "precision=bf16"]))
    assert len(result.rows) == 3 and len(resolved) == 1
    assert caplog.messages == [
        "predict: precision=bf16 asked, but this CPU has no native bf16; running in float32"
    ]


def test_morphometrics_by_hand() -> None:
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:8, 2:8] = 1  # 36 px neuron
    mask[15, 20] = 1  # 1 px speck: area yes, count no
    mask[12, 5:25] = 2  # 20 px one-pixel-wide axon
    row = measure_mask(mask, num_classes=3, min_neuron_px=4)
    assert row == {
        "height": 20,
        "width": 30,
        "neuron_count": 1,
        "neuron_area_px": 37,
        "axon_area_px": 20,
        "axon_skeleton_length_px": 20,
    }
    assert skeleton_length_px(np.zeros((5, 5), bool)) == 0


def test_overlay_colours() -> None:
    gray = np.full((4, 4), 100, dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[0, 0], mask[0, 1] = 1, 2
    out = overlay(gray, mask, colors=[[0, 255, 0], [255, 0, 0]], alpha=0.5)
    assert out[0, 0].tolist() == [50, 178, 50] and out[0, 1].tolist() == [178, 50, 50]
    assert out[3, 3].tolist() == [100, 100, 100]
    truth = np.zeros((4, 4), dtype=np.uint8)
    truth[1:3, 1:3] = 1
    outlined = overlay(gray, mask, colors=[[0, 255, 0]], truth=truth, outline_color=(255, 255, 0))
    assert outlined[1, 1].tolist() == [255, 255, 0]


def test_folder_tree_outputs_repeat_its_layout(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    originals = tmp_path / "originals"
    rng = np.random.default_rng(2)
    for condition in ("200_2", "empty"):
        for number in (1, 2):
            image = rng.integers(0, 256, (64, 96), dtype=np.uint8)
            write_tiff(originals / condition / f"{number}.tif", image)
    write_tiff(originals / ".hidden" / "1.tif", np.zeros((64, 96), np.uint8))
    write_tiff(tmp_path / "share" / "1.tif", np.zeros((64, 96), np.uint8))
    (originals / "linked").symlink_to(tmp_path / "share", target_is_directory=True)
    (originals / "linked" / "loop").symlink_to(originals, target_is_directory=True)
    common = [f"ckpt_path={tmp_path / 'unet11.pth'}", "encoder=vgg11", "task=binary"]
    common += [f"input={originals}", "device=cpu"]
    names = ["200_2/1.tif", "200_2/2.tif", "empty/1.tif", "empty/2.tif", "linked/1.tif"]
    # Outputs inside the input tree, then a second run elsewhere: neither takes a run's masks
    # and overlays for images.
    out = originals / "preds"
    for output in (out, out, tmp_path / "second"):
        result = predict(compose_predict([*common, f"output={output}"]))
        assert [row["image"] for row in result.rows] == names and result.failures == []
    for name in names:
        stem = Path(name).with_suffix("")
        assert read_image(out / f"{stem}_mask.png").shape == (64, 96)
        assert (out / f"{stem}_overlay.png").is_file()
    assert [row["image"] for row in read_csv(out / "morphometrics.csv")] == names
    # The same numbers in two conditions do not clash: outputs keep their sub-folders.
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*_mask.png")) == [
        "200_2/1_mask.png", "200_2/2_mask.png", "empty/1_mask.png", "empty/2_mask.png",
        "linked/1_mask.png",
    ]  # fmt: skip
