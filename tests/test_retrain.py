"""Correct and retrain: predictions painted in the lab's colours read back exactly by prepare, a
corrected PNG label chosen over the hand-painted JPEG, and fine-tuning with init_from."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from omegaconf import DictConfig, OmegaConf

from neuroseg import io
from neuroseg.data.labels import class_mask, paint_mask, read_mask, write_label_copies
from neuroseg.data.synth_tree import make_dataset
from neuroseg.data.transforms import normalize
from neuroseg.models.ternausnet import build_model
from neuroseg.predict import predict
from neuroseg.prepare import prepare
from neuroseg.train import train

REPO = Path(__file__).resolve().parents[1]
LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint
WHOLE = ["tiles.rows=1", "tiles.cols=1", "workers=1"]  # one tile per image: masks compare whole
# Tiny fits as in test_train: random weights, small crops, two batches, no loader workers.
FIT = [
    "encoder.weights=null",
    "data.crop_hw=[64,96]",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer=cpu",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "logger=csv",
    "test=false",
]


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The shipped `name` config with `overrides`, as the entry point would see it."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="module")
def palette() -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "palette" / "qlab.yaml"))


@pytest.fixture(scope="module")
def small_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 conditions x 2 images of 64x96 with JPEG labels (labels/ and labels_axons/)."""
    out = tmp_path_factory.mktemp("retrain") / "raw"
    conditions = ("200_2", "empty")
    return make_dataset(
        out, per_condition=2, height=64, width=96, duplicates=0, seed=5, conditions=conditions
    )


def test_paint_mask_reads_back_exactly_pixel_by_pixel(palette: dict) -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (32, 48), dtype=np.uint8)
    mask = rng.integers(0, 3, (32, 48), dtype=np.uint8)  # single-pixel strokes everywhere
    rgb = paint_mask(gray, mask, palette["colors"])
    assert tuple(rgb[mask == 1][0]) == (255, 51, 255) and tuple(rgb[mask == 2][0]) == (250, 77, 70)
    np.testing.assert_array_equal(rgb[mask == 0], np.repeat(gray[mask == 0, None], 3, axis=-1))
    np.testing.assert_array_equal(class_mask(rgb, palette), mask)
    with pytest.raises(ValueError, match=r"classes \[3\]"):
        paint_mask(gray, np.full_like(mask, 3), palette["colors"])


def balanced_unet11(classes: int, gray8: np.ndarray) -> torch.nn.Module:
    """A seeded random UNet11 whose logits on `gray8` are centred per class and spread out, so
    its prediction holds every class (a plain random one predicts one class almost everywhere)."""
    torch.manual_seed(1)
    model = build_model("vgg11", classes, None).eval()
    image = normalize(gray8.astype(np.float32) / 255.0)
    with torch.no_grad():
        model.final.weight.mul_(100.0)
        logits = model(torch.from_numpy(image)[None])
        model.final.bias.sub_(logits.mean(dim=(0, 2, 3)))
    return model


@pytest.mark.parametrize("task", ["binary", "axons"])
def test_prediction_to_label_png_to_prepare_is_exact(
    task: str, small_raw: Path, tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    classes = 1 if task == "binary" else 3
    model = balanced_unet11(classes, io.read_image(small_raw / "originals" / "200_2" / "1.tif"))
    checkpoint = write_legacy_checkpoint(model, tmp_path / "m.pth")
    out = tmp_path / "predicted"
    common = [f"ckpt_path={checkpoint}", "encoder=vgg11", f"task={task}", "device=cpu"]
    overrides = [*common, f"input={small_raw / 'originals'}", f"output={out}", "labels=true"]
    predict(compose_config("predict", overrides))
    trees = ["labels"] + (["labels_axons"] if task == "axons" else [])
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("labels")) == trees
    corrected = tmp_path / "raw"
    shutil.copytree(small_raw / "originals", corrected / "originals")
    for tree in trees:
        shutil.copytree(out / tree, corrected / tree)
    assert (corrected / "labels" / "200_2" / "pred_1.png").is_file()
    prepared = tmp_path / "prepared"
    prepare(compose_config("prepare", [f"raw_dir={corrected}", f"out_dir={prepared}", *WHOLE]))
    folder = "masks" if task == "binary" else "masks_axons"
    seen = set()
    for predicted in sorted(out.glob("*/*_mask.png")):
        condition, number = predicted.parent.name, predicted.name.removesuffix("_mask.png")
        (tile,) = prepared.glob(f"*/{folder}/{condition}_{number}_r0c0.png")
        mask = io.read_image(predicted)
        np.testing.assert_array_equal(io.read_image(tile), mask)
        seen |= set(np.unique(mask).tolist())
    assert seen == set(range(classes if classes > 1 else 2))  # every class took part


def test_png_label_is_chosen_over_jpeg_and_reported(
    small_raw: Path, tmp_path: Path, palette: dict
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(small_raw, raw)
    gray = io.read_image(raw / "originals" / "200_2" / "1.tif")
    corrected = np.zeros(gray.shape, np.uint8)
    corrected[10:20, 30:50] = 1  # the corrected label: one neuron, where the JPEG has others
    write_label_copies(raw, "200_2", "1", gray, corrected, palette["colors"], "pred", False)
    jpeg_mask = read_mask(raw / "labels" / "200_2" / "label_1.jpg", palette, "binary")
    assert not np.array_equal(jpeg_mask, corrected)

    def prepared_mask(prefer: list[str]) -> tuple[np.ndarray, dict]:
        out = tmp_path / f"prepared{len(prefer)}"
        report = prepare(compose_config("prepare", [f"raw_dir={raw}", f"out_dir={out}", *WHOLE]))
        (tile,) = out.glob("*/masks/200_2_1_r0c0.png")
        return io.read_image(tile), io.read_json(out / "report.json")

    mask, report = prepared_mask([])
    np.testing.assert_array_equal(mask, corrected)
    assert report["labels_chosen"] == {
        "prefer_label": "png",
        "chosen": [
            {
                "path": "labels/200_2/pred_1.png",
                "over": "labels/200_2/label_1.jpg",
                "reason": "prefer_label=png",
            }
        ],
    }
    out = tmp_path / "prepared_jpeg"
    overrides = [f"raw_dir={raw}", f"out_dir={out}", "prefer_label=jpeg", *WHOLE]
    report = prepare(compose_config("prepare", overrides))
    (tile,) = out.glob("*/masks/200_2_1_r0c0.png")
    np.testing.assert_array_equal(io.read_image(tile), jpeg_mask)
    assert report["labels_chosen"]["chosen"][0]["path"] == "labels/200_2/label_1.jpg"
    with pytest.raises(ValueError, match="prefer_label='tiff'"):
        prepare(compose_config("prepare", [f"raw_dir={raw}", f"out_dir={out}", "prefer_label=tiff"]))


def saved_state(run_dir: Path) -> dict:
    """The run's checkpoints/last.ckpt, read in full (our own file)."""
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)


def network(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The U-Net's tensors of a Lightning checkpoint, without the `model.` prefix."""
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}


def test_init_from_starts_from_the_weights_with_a_fresh_run(
    prepared_dir: Path, tmp_path: Path
) -> None:
    first = tmp_path / "first"
    data = [f"data.dir={prepared_dir}", *FIT]
    train(compose_config("train", [*data, "trainer.max_epochs=2", f"paths.output_dir={first}"]))
    before = saved_state(first)
    assert before["epoch"] == 1 and before["global_step"] == 4
    # lr 0: the fine-tuned run's weights stay exactly those it started from.
    second = tmp_path / "second"
    overrides = [*data, "trainer.max_epochs=1", "optimizer.lr=0.0", f"paths.output_dir={second}"]
    train(compose_config("train", [*overrides, f"init_from={first / 'checkpoints' / 'last.ckpt'}"]))
    after = saved_state(second)
    assert after["epoch"] == 0 and after["global_step"] == 2
    (adam,) = after["optimizer_states"]
    assert {float(state["step"]) for state in adam["state"].values()} == {2.0}
    weights, start = network(after), network(before)
    assert weights.keys() == start.keys()
    assert all(torch.equal(weights[key], start[key]) for key in start)


def test_init_from_a_legacy_file_and_refusals(
    prepared_dir: Path, tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    torch.manual_seed(2)
    legacy = write_legacy_checkpoint(build_model("vgg11", 1, None), tmp_path / "unet11.pth")
    run = tmp_path / "run"
    common = [f"data.dir={prepared_dir}", *FIT, "trainer.max_epochs=1", "optimizer.lr=0.0"]
    train(compose_config("train", [*common, f"init_from={legacy}", f"paths.output_dir={run}"]))
    reference = build_model("vgg11", 1, None)
    torch.manual_seed(2)
    reference = build_model("vgg11", 1, None).state_dict()
    weights = network(saved_state(run))
    assert all(torch.equal(weights[key], reference[key]) for key in reference)

    ours = run / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"^init_from: .*vgg11.*(fine-tuning keeps)"):
        train(compose_config("train", [*common, "encoder=vgg16", f"init_from={legacy}"]))
    with pytest.raises(ValueError, match=r"^init_from: .*task=binary but task=axons"):
        train(compose_config("train", [*common, "task=axons", f"init_from={ours}"]))
    with pytest.raises(ValueError, match="not both"):
        train(compose_config("train", [*common, f"init_from={ours}", f"ckpt_path={ours}"]))
