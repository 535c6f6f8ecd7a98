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
from neuroseg.data.sample_tree import make_dataset
from neuroseg.data.settings import read_group_file
from neuroseg.data.transforms import normalize
from neuroseg.inference.paths import check_label_names, is_output
from neuroseg.models.ternausnet import build_model
from neuroseg.predict import predict
from neuroseg.prepare import prepare
from neuroseg.train import train
from neuroseg.training.module import SegmentationModule
from neuroseg.training.resume import fine_tune_weights

REPO = Path(__file__).resolve().parents[1]
LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint
WHOLE = ["tiles.rows=1", "tiles.cols=1", "workers=1"]  # one tile per image: masks compare whole
# A tiny fit as in test_train: random weights, small crops, no loader workers.
FIT = [
    "encoder.weights=null",
    "data.crop_hw=[64,96]",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer=cpu",
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
    return OmegaConf.to_container(read_group_file(REPO / "conf" / "palette" / "qlab.yaml"))


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

    def prepared(*overrides: str) -> tuple[np.ndarray, dict]:
        """The 200_2_1 neuron mask and the report of `raw` prepared with `overrides`."""
        out = tmp_path / f"prepared{len(list(tmp_path.iterdir()))}"
        cfg = compose_config("prepare", [f"raw_dir={raw}", f"out_dir={out}", *WHOLE, *overrides])
        report = prepare(cfg)
        (tile,) = out.glob("*/masks/200_2_1_r0c0.png")
        assert io.read_json(out / "report.json") == report
        return io.read_image(tile), report

    mask, report = prepared()
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
    mask, report = prepared("prefer_label=jpeg")
    np.testing.assert_array_equal(mask, jpeg_mask)
    assert report["labels_chosen"]["chosen"][0]["path"] == "labels/200_2/label_1.jpg"
    with pytest.raises(ValueError, match="prefer_label='tiff'"):
        prepared("prefer_label=tiff")


def lightning_checkpoint(path: Path, encoder: str) -> Path:
    """A checkpoint as train writes it, 7 epochs into a run: a binary U-Net, Adam 70 steps in."""
    torch.manual_seed(3)
    module = SegmentationModule(encoder, "binary", torch.optim.Adam)
    optimizer = torch.optim.Adam(module.parameters())
    state = {"step": torch.tensor(70.0)}
    optimizer_state = {"state": {0: state}, "param_groups": optimizer.state_dict()["param_groups"]}
    saved = {"epoch": 7, "global_step": 70, "optimizer_states": [optimizer_state]}
    saved |= {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save(saved, path)
    return path


def network(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The U-Net's tensors of a Lightning checkpoint, without the `model.` prefix."""
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}


@pytest.mark.slow  # one short fit: about 20 s on 2 busy cores
def test_init_from_starts_from_the_weights_with_a_fresh_run(
    prepared_dir: Path, tmp_path: Path
) -> None:
    start = lightning_checkpoint(tmp_path / "start.ckpt", "vgg11")
    run = tmp_path / "run"
    overrides = [f"data.dir={prepared_dir}", *FIT, "+trainer.limit_train_batches=1"]
    # lr 0: the fine-tuned run's weights stay exactly those it started from.
    overrides += ["trainer.max_epochs=1", "optimizer.lr=0.0", f"paths.output_dir={run}"]
    train(compose_config("train", [*overrides, f"init_from={start}"]))
    after = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert after["epoch"] == 0 and after["global_step"] == 1
    (adam,) = after["optimizer_states"]
    assert {float(state["step"]) for state in adam["state"].values()} == {1.0}
    weights, before = network(after), network(torch.load(start, weights_only=False))
    assert weights.keys() == before.keys()
    assert all(torch.equal(weights[key], before[key]) for key in before)


def test_init_from_a_legacy_file_and_refusals(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    torch.manual_seed(2)
    model = build_model("vgg11", 1, None)
    legacy = write_legacy_checkpoint(model, tmp_path / "unet11.pth")
    weights = fine_tune_weights(str(legacy), None, "vgg11", "binary", trusted=False)
    reference = model.state_dict()
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[key], reference[key]) for key in reference)

    ours = lightning_checkpoint(tmp_path / "ours.ckpt", "vgg11")
    common = [f"data.dir={tmp_path / 'never_read'}", *FIT]
    with pytest.raises(ValueError, match=r"^init_from: .*UNet11.*fine-tuning keeps"):
        train(compose_config("train", [*common, "encoder=vgg16", f"init_from={legacy}"]))
    with pytest.raises(ValueError, match=r"^init_from: .*encoder=vgg11 but encoder=vgg16"):
        train(compose_config("train", [*common, "encoder=vgg16", f"init_from={ours}"]))
    with pytest.raises(ValueError, match=r"^init_from: .*task=binary but task=axons"):
        train(compose_config("train", [*common, "task=axons", f"init_from={ours}"]))
    with pytest.raises(ValueError, match="not both"):
        train(compose_config("train", [*common, f"init_from={ours}", f"ckpt_path={ours}"]))
    with pytest.raises(ValueError, match="trust_checkpoint=true"):
        pickled = tmp_path / "pickled.ckpt"
        torch.save({"state_dict": {}, "hyper_parameters": {"opaque": Path("x")}}, pickled)
        train(compose_config("train", [*common, f"init_from={pickled}"]))
    trusted = [*common, f"init_from={pickled}", "trust_checkpoint=true"]
    with pytest.raises(ValueError, match=r"^init_from: .*encoder None"):  # read, then checked
        train(compose_config("train", trusted))


def test_label_copies_are_never_read_back_as_inputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert is_output(out / "labels_axons" / "200_2" / "pred_1.png", out)
    assert not is_output(tmp_path / "labels" / "200_2" / "label_1.png", out)
    clash = [tmp_path / "a" / "x" / "1.tif", tmp_path / "b" / "x" / "1.png"]
    with pytest.raises(ValueError, match="label copies would overwrite"):
        check_label_names(clash)
    check_label_names([tmp_path / "a" / "x" / "1.tif", tmp_path / "a" / "y" / "1.tif"])
