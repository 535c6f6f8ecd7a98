"""NeuroSegDataModule and TileDataset on tiny prepared trees written in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize

from neuroseg import io
from neuroseg.data.datamodule import NeuroSegDataModule
from neuroseg.data.dataset import TileDataset, collate_padded, read_manifest
from neuroseg.data.manifest import write_prepared_tree
from neuroseg.data.settings import read_group_file
from neuroseg.data.transforms import eval_transform, normalize, pad_to_multiple
from neuroseg.task import get_task

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data" / "default.yaml"
TILE_HW = (80, 112)  # not multiples of 32, so val/test padding shows
CROP_HW = [64, 96]


def write_prepared(
    root: Path,
    dtype: type = np.uint8,
    axons: bool = True,
    seed: int = 0,
    counts: dict | None = None,
) -> Path:
    """A prepared tree as `neuroseg.prepare` writes it: 2x2 tiles of TILE_HW per random image."""
    rng = np.random.default_rng(seed)
    counts = counts or {"train": 2, "val": 1, "test": 1}
    splits = [split for split, images in counts.items() for _ in range(images)]
    images = []
    for number, split in enumerate(splits, start=1):
        image8 = rng.integers(0, 256, (2 * TILE_HW[0], 2 * TILE_HW[1]), dtype=np.uint8)
        image = image8 if dtype == np.uint8 else image8.astype(np.uint16) * 257
        classes = rng.integers(0, 3, image.shape, dtype=np.uint8)
        images.append(
            dict(split=split, condition="200_2", image_id=f"200_2_{number}", image=image)
            | dict(classes=classes)
        )
    return write_prepared_tree(root, images, axons=axons)


def datamodule(data_dir: Path, task: str = "binary", **overrides: object) -> NeuroSegDataModule:
    """A DataModule from the shipped conf/data/default.yaml; test-sized crops, no workers."""
    cfg = read_group_file(CONF_DATA)
    cfg.dir = str(data_dir)
    cfg.crop_hw = CROP_HW
    cfg.num_workers = 0
    cfg.batch_size = 2
    cfg.eval_batch_size = 2
    return NeuroSegDataModule(**{**cfg, **overrides}, task=task)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_prepared(tmp_path_factory.mktemp("prepared"))


@pytest.mark.parametrize("task", ["binary", "axons"])
def test_batches_have_contract_shapes_dtypes_and_classes(prepared: Path, task: str) -> None:
    dm = datamodule(prepared, task)
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    for batch, (h, w) in ((train, CROP_HW), (val, (96, 128))):
        assert batch["image"].shape == (2, 3, h, w) and batch["image"].dtype == torch.float32
        assert batch["valid"].shape == (2, h, w) and batch["valid"].dtype == torch.bool
        assert len(batch["tile"]) == 2 and all(isinstance(t, str) for t in batch["tile"])
        if task == "binary":
            assert batch["target"].shape == (2, 1, h, w) and batch["target"].dtype == torch.float32
            assert set(batch["target"].unique().tolist()) == {0.0, 1.0}
        else:
            assert batch["target"].shape == (2, h, w) and batch["target"].dtype == torch.int64
            assert set(batch["target"].unique().tolist()) == {0, 1, 2}


@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_sees_whole_tile_padded_with_valid_false_on_padding(
    prepared: Path, split: str
) -> None:
    dm = datamodule(prepared, "axons")
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    batch = next(iter(loader))
    tile = batch["tile"][0]
    image = io.read_tiff(prepared / split / "images" / f"{tile}.tif")
    mask = io.read_image(prepared / split / "masks_axons" / f"{tile}.png")
    h, w = TILE_HW
    valid = batch["valid"][0]
    assert valid[:h, :w].all() and valid.sum() == h * w  # False exactly on the padding
    np.testing.assert_allclose(batch["image"][0, :, :h, :w], normalize(io.scale_to_unit(image)))
    np.testing.assert_array_equal(batch["target"][0, :h, :w], mask)
    # The padding is the image reflected, exactly as prediction pads a whole image.
    expected = normalize(pad_to_multiple(io.scale_to_unit(image).astype(np.float32)))
    np.testing.assert_allclose(batch["image"][0], expected, atol=1e-6)


def test_train_valid_marks_padding_when_crop_exceeds_tile(prepared: Path) -> None:
    dm = datamodule(prepared, crop_hw=[96, 128])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[-2:] == (96, 128)
    assert batch["valid"].sum(dim=(1, 2)).tolist() == [80 * 112] * 2


def test_sixteen_bit_tile_scales_like_its_eight_bit_twin(tmp_path: Path) -> None:
    eight = write_prepared(tmp_path / "u8", np.uint8, seed=3)
    sixteen = write_prepared(tmp_path / "u16", np.uint16, seed=3)
    assert io.read_tiff(next((sixteen / "val" / "images").iterdir())).dtype == np.uint16
    a = next(iter(datamodule(eight).val_dataloader()))["image"]
    b = next(iter(datamodule(sixteen).val_dataloader()))["image"]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    assert ((a - b) * std).abs().max() <= 1 / 255  # compared in [0, 1] units


def test_cache_gives_identical_samples(prepared: Path) -> None:
    samples = []
    for cache in (False, True):
        dm = datamodule(prepared, "axons", cache=cache)
        dm.setup("fit")
        assert (dm.datasets["train"].cached is not None) == cache
        torch.manual_seed(7)  # same augmentation draws for both
        samples.append([dm.datasets[split][i] for split in ("train", "val") for i in range(2)])
    for plain, cached in zip(*samples, strict=True):
        assert plain["tile"] == cached["tile"]
        for key in ("image", "target", "valid"):
            assert torch.equal(plain[key], cached[key])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_seed_everything_makes_train_batches_reproducible(prepared: Path, num_workers: int) -> None:
    def first_batches(seed: int) -> list[torch.Tensor]:
        pl.seed_everything(seed, workers=True)
        loader = datamodule(prepared, num_workers=num_workers).train_dataloader()
        return [batch["image"] for batch in loader]

    a, b, c = first_batches(0), first_batches(0), first_batches(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_manifest_rows_are_typed_and_follow_loader_order(prepared: Path) -> None:
    dm = datamodule(prepared)
    manifest = read_manifest(prepared)
    assert len(manifest) == 16
    rows = [row for row in manifest if row["split"] == "test"]
    assert rows[1]["x0"] == 112 and rows[1]["source_width"] == 224 and rows[1]["col"] == 1
    tiles = [t for batch in dm.test_dataloader() for t in batch["tile"]]
    assert tiles == [row["tile"] for row in rows]


def test_persistent_workers_switch_off_without_workers_and_lists_become_tuples(
    prepared: Path,
) -> None:
    dm = datamodule(prepared, persistent_workers=True)
    noise = read_group_file(CONF_DATA).augment.noise_std_range
    assert dm.persistent_workers is False  # DataLoader refuses them with num_workers=0
    assert dm.augment["noise_std_range"] == tuple(noise)  # albumentations rejects ListConfig
    assert len(next(iter(dm.train_dataloader()))["tile"]) == 2


def test_collate_pads_mixed_sizes_with_invalid_pixels() -> None:
    def sample(h: int, w: int) -> dict:
        return {
            "image": torch.rand(3, h, w),
            "target": torch.ones(h, w, dtype=torch.int64),
            "valid": torch.ones(h, w, dtype=torch.bool),
            "tile": f"t{h}",
        }

    batch = collate_padded([sample(32, 64), sample(64, 32)])
    assert batch["image"].shape == (2, 3, 64, 64) and batch["tile"] == ["t32", "t64"]
    # Images are reflected like every other padding: row 32 mirrors row 30.
    torch.testing.assert_close(batch["image"][0, :, 32], batch["image"][0, :, 30])
    assert batch["valid"].sum(dim=(1, 2)).tolist() == [32 * 64, 64 * 32]
    assert batch["target"][0, 32:].eq(0).all()


def test_missing_dir_names_path_and_prepare(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere.*neuroseg\.prepare"):
        datamodule(tmp_path / "nowhere").setup("fit")


def test_missing_manifest_names_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.csv.*neuroseg\.prepare"):
        datamodule(tmp_path).setup("fit")


def test_empty_split_names_manifest_and_split(tmp_path: Path) -> None:
    write_prepared(tmp_path, counts={"train": 1, "test": 1})
    with pytest.raises(ValueError, match=r"manifest\.csv: no tiles in split 'val'"):
        datamodule(tmp_path).setup("fit")


def test_axons_without_masks_axons_says_rerun_prepare(tmp_path: Path) -> None:
    write_prepared(tmp_path, axons=False, counts={"train": 1, "val": 1})
    datamodule(tmp_path, "binary").setup("fit")  # binary needs only masks/
    with pytest.raises(FileNotFoundError, match=r"masks_axons.*labels_axons"):
        datamodule(tmp_path, "axons").setup("fit")


def test_missing_tile_file_is_listed(tmp_path: Path) -> None:
    write_prepared(tmp_path, counts={"train": 1, "val": 1})
    (tmp_path / "val" / "masks" / "200_2_2_r1c0.png").unlink()
    (tmp_path / "val" / "images" / "200_2_2_r0c1.tif").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 files.*200_2_2_r0c1\.tif.*200_2_2_r1c0\.png"):
        datamodule(tmp_path).setup("validate")


def test_mask_value_beyond_task_names_png(tmp_path: Path) -> None:
    write_prepared(tmp_path, counts={"train": 1, "val": 1})
    bad = tmp_path / "val" / "masks" / "200_2_2_r0c0.png"
    io.write_png(bad, np.full(TILE_HW, 2, np.uint8))
    dataset = TileDataset(tmp_path / "val", ["200_2_2_r0c0"], get_task("binary"), eval_transform())
    with pytest.raises(ValueError, match="200_2_2_r0c0.png"):
        dataset[0]


def test_bad_settings_are_reported_together(prepared: Path) -> None:
    with pytest.raises(ValueError, match=r"crop_hw=\[60, 96\].*eval_batch_size=0.*augment keys"):
        datamodule(prepared, crop_hw=[60, 96], eval_batch_size=0, augment={"rotate_p": 0.5})


def test_manifest_reader_rejects_non_integer_geometry(tmp_path: Path) -> None:
    write_prepared(tmp_path, counts={"train": 1})
    text = (tmp_path / "manifest.csv").read_text().replace(",80,112,", ",80,wide,", 1)
    (tmp_path / "manifest.csv").write_text(text)
    with pytest.raises(ValueError, match=r"manifest\.csv: line 2 width='wide'"):
        read_manifest(tmp_path)


class TinyModule(pl.LightningModule):
    """A 1x1 convolution: enough for Lightning to drive every dataloader hook."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.head = torch.nn.Conv2d(3, out_channels, 1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self.head(batch["image"])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["target"])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        assert batch["image"].shape[-2:] == (96, 128)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.log("test/valid_px", batch["valid"].float().sum(), batch_size=len(batch["tile"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_drives_fit_and_test(prepared: Path) -> None:
    dm = datamodule(prepared)
    trainer = pl.Trainer(
        fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False
    )
    trainer.fit(TinyModule(1), datamodule=dm)
    metrics = trainer.test(TinyModule(1), datamodule=dm, verbose=False)[0]
    assert metrics["test/valid_px"] == 2 * 80 * 112


@pytest.mark.parametrize("task", ["binary", "axons"])
def test_prepared_tree_from_prepare_loads_and_matches_manifest(
    prepared_dir: Path, task: str
) -> None:
    dm = datamodule(prepared_dir, task)
    dm.setup()
    manifest = read_manifest(prepared_dir)
    assert {name: len(dm.datasets[name]) for name in ("train", "val", "test")} == {
        name: sum(row["split"] == name for row in manifest) for name in ("train", "val", "test")
    }
    train = next(iter(dm.train_dataloader()))
    assert train["image"].shape[-2:] == tuple(CROP_HW)
    for batch in dm.val_dataloader():
        assert batch["image"].shape[-2:] == (96, 128) and batch["valid"].all()
        assert set(batch["target"].unique().tolist()) <= set(range(dm.task.num_classes))
        if task == "axons":  # manifest pixel counts come from masks_axons when it exists
            for tile, target in zip(batch["tile"], batch["target"], strict=True):
                row = next(row for row in manifest if row["tile"] == tile)
                counts = torch.bincount(target.ravel(), minlength=3).tolist()
                assert counts == [row["px_background"], row["px_neurons"], row["px_axons"]]


def test_train_config_composes_into_datamodule(prepared: Path) -> None:
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "train", overrides=[f"data.dir={prepared}", "task=axons", "data.num_workers=0"]
        )
    dm = NeuroSegDataModule(**cfg.data, task=cfg.task.name)
    assert dm.task.name == "axons" and dm.crop_hw == (512, 768)
    batch = next(iter(dm.val_dataloader()))
    assert batch["target"].dtype == torch.int64 and batch["image"].shape[-2:] == (96, 128)
