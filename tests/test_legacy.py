"""The original checkpoint layout, its conversion, and `load_checkpoint` (legacy and Lightning,
and the pickled objects it refuses to run)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from hydra import compose, initialize
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from neuroseg.inference.predictor import load_model, load_settings_model
from neuroseg.inference.settings import inference_settings
from neuroseg.models.checkpoint import LoadedModel, load_checkpoint, threshold_path
from neuroseg.models.legacy import (
    convert_legacy_state_dict,
    is_legacy_checkpoint,
    legacy_model_state,
    legacy_state_dict,
)
from neuroseg.models.ternausnet import build_model
from neuroseg.train import train

WB = ("weight", "bias")
LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint


def documented_layout(encoder: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    """The original's model_state_dict, written out from docs/legacy-checkpoints.md."""
    if encoder == "vgg11":
        convs = {0: (3, 64), 3: (64, 128), 6: (128, 256), 8: (256, 256)}
        convs |= {11: (256, 512), 13: (512, 512), 16: (512, 512), 18: (512, 512)}
        aliases = ["conv1.0", "conv2.0", "conv3.0", "conv3.2", "conv4.0", "conv4.2", "conv5.0"]
        aliases.append("conv5.2")
        dec4_out, dec3_in = 128, 384
    else:
        convs = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256)}
        convs |= {12: (256, 256), 14: (256, 256), 17: (256, 512), 19: (512, 512), 21: (512, 512)}
        convs |= {24: (512, 512), 26: (512, 512), 28: (512, 512)}
        aliases = ["conv1.0", "conv1.2", "conv2.0", "conv2.2"]
        aliases += [f"conv{k}.{j}" for k in (3, 4, 5) for j in (0, 2, 4)]
        dec4_out, dec3_in = 256, 512
    layout: dict[str, tuple[int, ...]] = {}
    for i, (c_in, c_out) in convs.items():
        layout |= {f"encoder.{i}.weight": (c_out, c_in, 3, 3), f"encoder.{i}.bias": (c_out,)}
    for alias, (c_in, c_out) in zip(aliases, convs.values(), strict=True):
        layout |= {f"{alias}.weight": (c_out, c_in, 3, 3), f"{alias}.bias": (c_out,)}
    blocks = {
        "center": (512, 512, 256),
        "dec5": (768, 512, 256),
        "dec4": (768, 512, dec4_out),
        "dec3": (dec3_in, 256, 64),
        "dec2": (192, 128, 32),
    }
    for block, (c_in, mid, c_out) in blocks.items():
        layout |= {f"{block}.block.0.conv.weight": (mid, c_in, 3, 3)}
        layout |= {f"{block}.block.0.conv.bias": (mid,)}
        layout |= {f"{block}.block.1.weight": (mid, c_out, 4, 4), f"{block}.block.1.bias": (c_out,)}
    layout |= {"dec1.conv.weight": (32, 96, 3, 3), "dec1.conv.bias": (32,)}
    layout |= {"final.weight": (num_classes, 32, 1, 1), "final.bias": (num_classes,)}
    return layout


@pytest.fixture(scope="module")
def unet11() -> torch.nn.Module:
    torch.manual_seed(11)
    return build_model("vgg11", 1).eval()


@pytest.fixture(scope="module")
def unet16_axons() -> torch.nn.Module:
    torch.manual_seed(16)
    return build_model("vgg16", 3).eval()


def layout_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Same names and shapes, every tensor a zero-stride view of one zero: a file of a few KB."""
    return {key: torch.zeros(()).expand(value.shape) for key, value in state.items()}


@pytest.fixture(autouse=True)
def no_imagenet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loading a checkpoint must never reach for ImageNet weights: make that fail loudly."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise URLError("no network in tests")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.mark.parametrize(("fixture", "encoder", "classes", "count"), [
    ("unet11", "vgg11", 1, 56),
    ("unet16_axons", "vgg16", 3, 76),
])  # fmt: skip
def test_legacy_layout_matches_documented(
    request: pytest.FixtureRequest, fixture: str, encoder: str, classes: int, count: int
) -> None:
    state = legacy_state_dict(request.getfixturevalue(fixture))
    expected = documented_layout(encoder, classes)
    assert len(state) == len(expected) == count
    assert list(state) == list(expected)
    assert {key: tuple(value.shape) for key, value in state.items()} == expected


def test_legacy_duplicates_share_the_encoder_tensors(unet11: torch.nn.Module) -> None:
    state = legacy_state_dict(unet11)
    assert state["conv3.2.weight"].data_ptr() == state["encoder.8.weight"].data_ptr()
    assert torch.equal(state["conv5.2.bias"], state["encoder.18.bias"])


def test_convert_drops_duplicates(unet16_axons: torch.nn.Module) -> None:
    ours = convert_legacy_state_dict(legacy_state_dict(unet16_axons), "vgg16", 3)
    expected = unet16_axons.state_dict()
    assert list(ours) == list(expected)
    assert all(torch.equal(ours[key], expected[key]) for key in expected)


@pytest.mark.parametrize(("fixture", "encoder", "task"), [
    ("unet11", "vgg11", "binary"),
    ("unet16_axons", "vgg16", "axons"),
])  # fmt: skip
def test_legacy_round_trip_predicts_identically(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    write_legacy_checkpoint: LegacyWriter,
    fixture: str,
    encoder: str,
    task: str,
) -> None:
    model = request.getfixturevalue(fixture)
    path = write_legacy_checkpoint(model, tmp_path / "unet_epoch99.pth")
    loaded = load_checkpoint(path, encoder=encoder, task=task)
    assert (loaded.encoder, loaded.task, loaded.source, loaded.threshold) == (
        encoder,
        task,
        "legacy",
        None,
    )
    assert not loaded.model.training
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))


def test_is_legacy_checkpoint(unet11: torch.nn.Module) -> None:
    legacy = legacy_state_dict(unet11)
    assert is_legacy_checkpoint(
        {"epoch": 1, "model_state_dict": legacy, "optimizer_state_dict": {}}
    )
    assert is_legacy_checkpoint(legacy)
    assert not is_legacy_checkpoint({"state_dict": {}, "hyper_parameters": {}})
    assert not is_legacy_checkpoint(unet11.state_dict())
    assert not is_legacy_checkpoint(torch.zeros(2))


def test_bare_and_dataparallel_state_dicts_convert(unet11: torch.nn.Module) -> None:
    legacy = legacy_state_dict(unet11)
    expected = unet11.state_dict()
    parallel = {"model_state_dict": {f"module.{k}": v for k, v in legacy.items()}}
    for obj in (legacy, parallel):
        ours = convert_legacy_state_dict(legacy_model_state(obj), "vgg11", 1)
        assert all(torch.equal(ours[key], expected[key]) for key in expected)


def save_layout(model: torch.nn.Module, path: Path) -> Path:
    """A legacy file with the model's layout but no real values (fast to write and read)."""
    torch.save({"epoch": 1, "model_state_dict": layout_only(legacy_state_dict(model))}, path)
    return path


def test_wrong_encoder(unet16_axons: torch.nn.Module, tmp_path: Path) -> None:
    path = save_layout(unet16_axons, tmp_path / "unet16_axons.pth")
    with pytest.raises(
        ValueError, match="unet16_axons.pth holds a UNet16 with 3 classes, not a UNet11"
    ):
        load_checkpoint(path, encoder="vgg11", task="axons")


def test_wrong_class_count(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_layout(unet11, tmp_path / "unet11_binary.pth")
    with pytest.raises(
        ValueError, match="unet11_binary.pth holds a UNet11 with 1 class, not a UNet11 "
    ):
        load_checkpoint(path, encoder="vgg11", task="axons")


def test_convert_names_wrong_model_without_file(unet11: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="holds a UNet11 with 1 class, not a UNet16 with 1 class"):
        convert_legacy_state_dict(legacy_state_dict(unet11), "vgg16", 1)


def test_foreign_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"model_state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(ValueError, match="resnet.pth holds no UNet11/UNet16.*fc.weight"):
        load_checkpoint(path, encoder="vgg11", task="binary")


def test_truncated_legacy_state_dict(unet11: torch.nn.Module, tmp_path: Path) -> None:
    legacy = layout_only(legacy_state_dict(unet11))
    del legacy["dec3.block.1.bias"]
    path = tmp_path / "truncated.pth"
    torch.save({"model_state_dict": legacy}, path)
    with pytest.raises(ValueError, match="truncated.pth holds no UNet11/UNet16"):
        load_checkpoint(path, encoder="vgg11", task="binary")


def test_disagreeing_duplicates(unet11: torch.nn.Module, tmp_path: Path) -> None:
    legacy = layout_only(legacy_state_dict(unet11))
    legacy["conv3.2.weight"] = torch.ones(()).expand(legacy["conv3.2.weight"].shape)
    path = tmp_path / "edited.pth"
    torch.save({"model_state_dict": legacy}, path)
    with pytest.raises(
        ValueError, match="edited.pth: conv3.2.weight differs from encoder.8.weight"
    ):
        load_checkpoint(path, encoder="vgg11", task="binary")


@pytest.mark.parametrize(("encoder", "task"), [(None, "binary"), ("vgg11", None), (None, None)])
def test_legacy_needs_encoder_and_task(
    unet11: torch.nn.Module, tmp_path: Path, encoder: str | None, task: str | None
) -> None:
    path = save_layout(unet11, tmp_path / "old.pth")
    with pytest.raises(
        ValueError, match="old.pth is a legacy checkpoint; pass encoder=vgg11|vgg16"
    ):
        load_checkpoint(path, encoder=encoder, task=task)


def test_unknown_encoder_and_task(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_layout(unet11, tmp_path / "old.pth")
    with pytest.raises(KeyError, match="vgg19"):
        load_checkpoint(path, encoder="vgg19", task="binary")
    with pytest.raises(KeyError, match="cells"):
        load_checkpoint(path, encoder="vgg11", task="cells")


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt"):
        load_checkpoint(tmp_path / "nowhere.ckpt")


def test_unknown_checkpoint_format(tmp_path: Path) -> None:
    path = tmp_path / "weights_only.pt"
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="weights_only.pt is neither a Lightning checkpoint"):
        load_checkpoint(path)


# Lightning checkpoints


def save_lightning(
    model: torch.nn.Module,
    path: Path,
    encoder: str,
    task: str,
    threshold: float | None,
    values: bool = False,
    omegaconf: bool = False,
) -> Path:
    """A checkpoint shaped like Lightning's: prefixed state_dict, hyper_parameters, extras.

    Without `values` the tensors are zero-stride stand-ins (tiny file) of the right shapes. The
    encoder's hyper-parameters are a plain dict, as train saves them, or with `omegaconf` the
    DictConfig a LightningModule without training/module.py's `plain` would pickle.
    """
    model_state = model.state_dict() if values else layout_only(model.state_dict())
    state = {f"model.{key}": value for key, value in model_state.items()}
    state["loss.pos_weight"] = torch.ones(1)  # a LightningModule may hold more than the net
    encoder_cfg = {"name": encoder, "weights": "imagenet", "offline_fallback": False}
    if omegaconf:
        encoder_cfg = OmegaConf.create(encoder_cfg)
    hparams = {"encoder": encoder_cfg, "task": task, "threshold": threshold}
    torch.save(
        {"epoch": 3, "global_step": 40, "state_dict": state, "hyper_parameters": hparams}, path
    )
    return path


def test_lightning_checkpoint(unet16_axons: torch.nn.Module, tmp_path: Path) -> None:
    path = save_lightning(unet16_axons, tmp_path / "best.ckpt", "vgg16", "axons", None, values=True)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LoadedModel)
    assert (loaded.encoder, loaded.task, loaded.source, loaded.threshold) == (
        "vgg16",
        "axons",
        "lightning",
        None,
    )
    assert not loaded.model.training
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), unet16_axons(x))


def test_lightning_threshold_and_sidecar(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_lightning(unet11, tmp_path / "epoch=3.ckpt", "vgg11", "binary", 0.4)
    assert load_checkpoint(path, encoder="vgg11", task="binary").threshold == pytest.approx(0.4)
    sidecar = threshold_path(path)
    assert sidecar == tmp_path / "epoch=3.ckpt.threshold.json"
    sidecar.write_text(json.dumps({"threshold": 0.25}))
    assert load_checkpoint(path).threshold == pytest.approx(0.25)


@pytest.mark.parametrize("content", ['{"thr": 0.3}', '{"threshold": 1.5}', "not json", "[0.3]"])
def test_bad_sidecar(unet11: torch.nn.Module, tmp_path: Path, content: str) -> None:
    path = save_lightning(unet11, tmp_path / "best.ckpt", "vgg11", "binary", None)
    threshold_path(path).write_text(content)
    with pytest.raises(ValueError, match="best.ckpt.threshold.json"):
        load_checkpoint(path)


def test_legacy_reads_sidecar(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_layout(unet11, tmp_path / "old.pth")
    threshold_path(path).write_text(json.dumps({"threshold": 0.3}))
    assert load_checkpoint(path, encoder="vgg11", task="binary").threshold == pytest.approx(0.3)


def test_lightning_disagrees_with_caller(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_lightning(unet11, tmp_path / "best.ckpt", "vgg11", "binary", None)
    with pytest.raises(ValueError, match="best.ckpt holds encoder=vgg11 but encoder=vgg16"):
        load_checkpoint(path, encoder="vgg16")
    with pytest.raises(ValueError, match="best.ckpt holds task=binary but task=axons"):
        load_checkpoint(path, task="axons")


def test_lightning_weights_do_not_fit_task(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_lightning(unet11, tmp_path / "mislabelled.ckpt", "vgg11", "axons", None)
    with pytest.raises(
        ValueError, match="mislabelled.ckpt: weights do not fit vgg11 with task axons"
    ):
        load_checkpoint(path)


def test_lightning_without_model_tensors(tmp_path: Path) -> None:
    path = tmp_path / "empty.ckpt"
    hparams = {"encoder": {"name": "vgg11"}, "task": "binary"}
    torch.save({"state_dict": {"net.w": torch.zeros(1)}, "hyper_parameters": hparams}, path)
    with pytest.raises(ValueError, match="empty.ckpt: no 'model.\\*' tensors"):
        load_checkpoint(path)


def test_lightning_without_encoder_name(tmp_path: Path) -> None:
    path = tmp_path / "noname.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"task": "binary"}}, path)
    with pytest.raises(ValueError, match="noname.ckpt: hyper_parameters name encoder None"):
        load_checkpoint(path)


# What load_checkpoint unpickles: tensors and plain containers, anything else only when trusted

UNPICKLED: list[str] = []


class TrainingNote:
    """A custom object some training scripts pickle next to the weights; records its unpickling."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __setstate__(self, state: dict[str, str]) -> None:
        UNPICKLED.append(state["text"])  # code from the file ran
        self.__dict__.update(state)


def save_with_note(model: torch.nn.Module, path: Path) -> Path:
    """A legacy file whose valid state dict sits next to a pickled `TrainingNote`."""
    state = layout_only(legacy_state_dict(model))
    torch.save({"epoch": 1, "model_state_dict": state, "note": TrainingNote("lr 1e-4")}, path)
    return path


@pytest.fixture
def weights_only_flags(monkeypatch: pytest.MonkeyPatch) -> list[bool | None]:
    """The `weights_only` argument of every torch.load call made during the test."""
    flags: list[bool | None] = []
    real_load = torch.load

    def spy(*args: object, **kwargs: object) -> object:
        flags.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return flags


@pytest.mark.slow
def test_trained_checkpoints_load_weights_only(
    prepared_dir: Path, tmp_path: Path, weights_only_flags: list[bool | None]
) -> None:
    """Both files a short real fit writes (best and last) need no trust: plain-dict hparams."""
    overrides = ["encoder.weights=null", "data.crop_hw=[64,96]", "data.batch_size=2"]
    overrides += ["data.num_workers=0", "trainer=cpu", "trainer.max_epochs=1", "test=false"]
    overrides += ["+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1"]
    overrides += ["trainer.log_every_n_steps=1"]
    overrides += [f"data.dir={prepared_dir}", f"paths.output_dir={tmp_path}"]
    with initialize(version_base="1.3", config_path="../conf"):
        train(compose("train", overrides=overrides))
    paths = sorted((tmp_path / "checkpoints").glob("*.ckpt"))
    assert [path.name.startswith("epoch000-iou") for path in paths] == [True, False]
    for path in paths:
        weights_only_flags.clear()
        loaded = load_checkpoint(path, trusted=False)
        assert weights_only_flags == [True]
        assert (loaded.encoder, loaded.task, loaded.source, loaded.threshold) == (
            "vgg11",
            "binary",
            "lightning",
            0.5,
        )
        saved = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert torch.equal(loaded.model.final.weight, saved["model.final.weight"])


def test_legacy_checkpoint_loads_weights_only(
    unet11: torch.nn.Module,
    tmp_path: Path,
    write_legacy_checkpoint: LegacyWriter,
    weights_only_flags: list[bool | None],
) -> None:
    path = write_legacy_checkpoint(unet11, tmp_path / "unet11.pth")
    loaded = load_checkpoint(path, encoder="vgg11", task="binary", trusted=False)
    assert weights_only_flags == [True]
    assert loaded.source == "legacy"
    assert torch.equal(loaded.model.final.weight, unet11.final.weight)


def test_pickled_objects_need_trust(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_with_note(unet11, tmp_path / "noted.pth")
    UNPICKLED.clear()
    with pytest.raises(
        ValueError,
        match=r"noted.pth holds pickled Python objects beyond tensors \(\S*TrainingNote\).*"
        "trust_checkpoint=true",
    ):
        load_checkpoint(path, encoder="vgg11", task="binary")
    assert UNPICKLED == []
    loaded = load_checkpoint(path, encoder="vgg11", task="binary", trusted=True)
    assert UNPICKLED == ["lr 1e-4"]
    assert (loaded.encoder, loaded.task, loaded.source) == ("vgg11", "binary", "legacy")


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_bytes(b"lr 1e-4, 100 epochs")
    expected = r"notes.pth: not a checkpoint, or truncated \(19 bytes\); copy it again"
    with pytest.raises(ValueError, match=expected) as caught:
        load_checkpoint(path)
    assert "trust_checkpoint" not in str(caught.value)  # trusting it would not help


def test_omegaconf_hparams_need_trust(unet11: torch.nn.Module, tmp_path: Path) -> None:
    path = save_lightning(unet11, tmp_path / "old.ckpt", "vgg11", "binary", None, omegaconf=True)
    with pytest.raises(ValueError, match=r"old.ckpt holds .*omegaconf.dictconfig.DictConfig"):
        load_checkpoint(path)
    assert load_checkpoint(path, trusted=True).encoder == "vgg11"


@pytest.mark.parametrize("entry_point", ["evaluate", "predict"])
def test_trust_checkpoint_key(unet11: torch.nn.Module, tmp_path: Path, entry_point: str) -> None:
    path = save_with_note(unet11, tmp_path / "noted.pth")
    common = [f"ckpt_path={path}", "encoder=vgg11", "task=binary", "device=cpu"]
    with initialize(version_base="1.3", config_path="../conf"):
        refused = inference_settings(compose(entry_point, overrides=common), entry_point)
        trusted = inference_settings(
            compose(entry_point, overrides=[*common, "trust_checkpoint=true"]), entry_point
        )
        with pytest.raises(ConfigCompositionException, match="trust_checkpoint=maybe"):
            compose(entry_point, overrides=[*common, "trust_checkpoint=maybe"])
    assert refused.trust_checkpoint is False
    with pytest.raises(ValueError, match="noted.pth .*trust_checkpoint=true"):
        load_settings_model(refused)
    assert load_settings_model(trusted)[0].source == "legacy"
    with pytest.raises(ValueError, match="trust_checkpoint='yes'; pass true or false"):
        load_model(path, encoder="vgg11", task="binary", trusted="yes")  # type: ignore[arg-type]
