"""export: the wrapped network, TorchScript and ONNX files checked against PyTorch, and the
bioimage.io package validated and run by bioimageio.core, offline, on a random UNet11."""

from __future__ import annotations

import builtins
import importlib.util
import os
import pathlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from hydra import compose, initialize
from omegaconf import DictConfig

from neuroseg.data.sample_image import make_image
from neuroseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from neuroseg.errors import NeurosegError, UsageError
from neuroseg.export import export
from neuroseg.inference.window import probabilities
from neuroseg.io import scale_to_unit, write_tiff
from neuroseg.models.export import (
    GrayToProbabilities,
    check_export,
    probe_inputs,
    write_torchscript,
)
from neuroseg.models.ternausnet import build_model
from neuroseg.predict import predict

# In CI (CI=true) every extra is installed: there a missing one fails instead of skipping.
needs_export_extra = pytest.mark.skipif(
    os.environ.get("CI") != "true" and importlib.util.find_spec("onnxruntime") is None,
    reason="needs the export extra: pip install -e '.[export]'",
)
LegacyWriter = Callable[[torch.nn.Module, Path], Path]  # conftest's write_legacy_checkpoint
AUTHORS = "package.authors=[{name: Test Author, affiliation: Test Lab}]"


def compose_export(overrides: list[str]) -> DictConfig:
    """The shipped export config with `overrides`."""
    with initialize(version_base="1.3", config_path="../conf"):
        return compose("export", overrides=overrides)


def random_unet11(num_classes: int, seed: int = 0) -> torch.nn.Module:
    """Seeded random UNet11 in eval mode."""
    torch.manual_seed(seed)
    return build_model("vgg11", num_classes, weights=None).eval()


def write_lightning_checkpoint(path: Path, model: torch.nn.Module, task: str) -> Path:
    """`model` in the layout SegmentationModule saves (`model.` keys, hyper-parameters)."""
    hparams = {"encoder": {"name": "vgg11", "weights": None}, "task": task, "threshold": None}
    state_dict = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state_dict, "hyper_parameters": hparams}, path)
    return path


def sample_gray(height: int, width: int, seed: int = 1) -> np.ndarray:
    """A synthetic 8-bit brightfield image (H, W)."""
    return make_image(np.random.default_rng(seed), height, width, "400_4").image


def test_wrapper_is_predicts_normalisation_and_activation() -> None:
    net = random_unet11(3)
    unit = scale_to_unit(sample_gray(64, 96))
    with torch.inference_mode():
        expected = probabilities(net(torch.from_numpy(normalize(unit)[None])))
        got = GrayToProbabilities(net, IMAGENET_MEAN, IMAGENET_STD)(
            torch.from_numpy(unit)[None, None]
        )
    assert got.shape == (1, 3, 64, 96)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_architecture_source_needs_no_neuroseg() -> None:
    from neuroseg.models.export import ARCHITECTURE_CALLABLE, architecture_source

    def no_neuroseg(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "neuroseg":
            raise ImportError(f"the architecture file imports {name}")
        return builtins.__import__(name, *args, **kwargs)

    namespace: dict[str, object] = {"__builtins__": {**vars(builtins), "__import__": no_neuroseg}}
    namespace["__name__"] = "neuroseg_architecture"
    exec(compile(architecture_source(), "neuroseg_architecture.py", "exec"), namespace)
    net = random_unet11(1)
    ours = GrayToProbabilities(net, IMAGENET_MEAN, IMAGENET_STD)
    theirs = namespace[ARCHITECTURE_CALLABLE]("vgg11", 1, list(IMAGENET_MEAN), list(IMAGENET_STD))
    theirs.load_state_dict(ours.state_dict(), strict=True)
    gray = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(theirs.eval()(gray), ours(gray), atol=0, rtol=0)


def test_torchscript_export_runs_any_multiple_of_32(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    ckpt = write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    out = tmp_path / "unet11.pt"
    result = export(
        compose_export(
            [f"ckpt_path={ckpt}", "encoder=vgg11", "task=binary", "format=torchscript"]
            + [f"output={out}", "sample.height=64", "sample.width=96"]
        )
    )
    assert result.path == out and out.is_file()
    assert result.checks[0].max_abs_diff <= 1e-4
    scripted = torch.jit.load(str(out))
    wrapped = GrayToProbabilities(random_unet11(1), IMAGENET_MEAN, IMAGENET_STD)
    gray = torch.rand(2, 1, 96, 160)  # neither the traced size nor batch
    with torch.inference_mode():
        torch.testing.assert_close(scripted(gray), wrapped(gray), atol=1e-5, rtol=0)


def test_check_export_refuses_a_file_of_other_weights(tmp_path: Path) -> None:
    unit = scale_to_unit(sample_gray(64, 64))
    example = torch.from_numpy(unit[None, None])
    other = GrayToProbabilities(random_unet11(1, seed=1), IMAGENET_MEAN, IMAGENET_STD)
    path = write_torchscript(other, tmp_path / "other.pt", example)
    ours = GrayToProbabilities(random_unet11(1, seed=0), IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="other.pt: torchscript differs from PyTorch"):
        check_export(path, "torchscript", ours, [unit[None, None]], tolerance=1e-4)


def test_probe_inputs_add_a_second_size_and_batch_and_refuse_a_bad_sample() -> None:
    unit = scale_to_unit(sample_gray(64, 96))
    shapes = [probe.shape for probe in probe_inputs(unit)]
    assert shapes == [(1, 1, 64, 96), (2, 1, 32, 32)]
    with pytest.raises(UsageError, match="set sample.height and sample.width"):
        probe_inputs(unit[:48])


def test_export_refuses_bad_settings(tmp_path: Path, write_legacy_checkpoint: LegacyWriter) -> None:
    ckpt = write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    legacy = [f"ckpt_path={ckpt}", "encoder=vgg11", "task=binary"]
    with pytest.raises(KeyError, match="format='tflite'"):
        export(compose_export([*legacy, "format=tflite"]))
    with pytest.raises(ValueError, match="ends in .onnx"):
        export(compose_export([*legacy, "format=onnx", f"output={tmp_path / 'a.pt'}"]))
    with pytest.raises(ValueError, match="is the checkpoint"):
        export(compose_export([*legacy, "format=torchscript", f"output={ckpt}"]))
    with pytest.raises(ValueError, match="set sample.height"):
        export(
            compose_export(
                [*legacy, "format=torchscript", f"output={tmp_path / 'a.pt'}"]
                + ["sample.height=80", "sample.width=64"]
            )
        )
    assert not (tmp_path / "a.pt").exists()
    with pytest.raises(ValueError, match="package.authors is empty"):
        export(compose_export([*legacy, f"output={tmp_path / 'a.zip'}", "sample.height=64"]))
    with pytest.raises(ValueError, match="at least 160"):
        export(
            compose_export(
                [*legacy, AUTHORS, f"output={tmp_path / 'a.zip'}"]
                + ["sample.height=64", "sample.width=64"]
            )
        )
    assert list(tmp_path.iterdir()) == [ckpt]  # nothing half-written


def test_export_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import neuroseg.export as entry

    assert not entry.installed("no_such_package.sub") and entry.installed("torch.nn")
    monkeypatch.setattr(entry, "installed", lambda name: name != "onnxruntime")
    with pytest.raises(NeurosegError, match=r"needs onnxruntime: pip install -e '.\[export\]'"):
        export(compose_export(["ckpt_path=unused.ckpt", "format=onnx"]))


def test_export_refuses_untrusted_pickles(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    ckpt = write_legacy_checkpoint(random_unet11(1), tmp_path / "unet11.pth")
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "origin": pathlib.PurePosixPath("/lab")}, ckpt)  # a pickled object
    common = [f"ckpt_path={ckpt}", "encoder=vgg11", "task=binary", "format=torchscript"]
    common += [f"output={tmp_path / 'unet11.pt'}", "sample.height=64", "sample.width=64"]
    with pytest.raises(ValueError, match="trust_checkpoint=true") as error:
        export(compose_export(common))
    assert "\n" not in str(error.value)
    assert export(compose_export([*common, "trust_checkpoint=true"])).path.is_file()


@pytest.mark.slow
@needs_export_extra
def test_onnx_export_runs_in_onnxruntime(
    tmp_path: Path, write_legacy_checkpoint: LegacyWriter
) -> None:
    import onnx
    import onnxruntime

    ckpt = write_legacy_checkpoint(random_unet11(3), tmp_path / "unet11_axons.pth")
    out = tmp_path / "unet11.onnx"
    result = export(
        compose_export(
            [f"ckpt_path={ckpt}", "encoder=vgg11", "task=axons", "format=onnx", f"output={out}"]
            + ["sample.height=64", "sample.width=64", "opset=18"]
        )
    )
    assert result.checks[0].max_abs_diff <= 1e-4
    model = onnx.load(str(out))
    assert max(entry.version for entry in model.opset_import if entry.domain == "") == 18
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    gray = np.random.default_rng(0).random((1, 1, 96, 128), dtype=np.float32)
    wrapped = GrayToProbabilities(random_unet11(3), IMAGENET_MEAN, IMAGENET_STD)
    with torch.inference_mode():
        expected = wrapped(torch.from_numpy(gray)).numpy()
    got = session.run(["output"], {"input": gray})[0]
    assert np.abs(got - expected).max() <= 1e-4


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bioimage.io zip of a random 3-class UNet11 from a Lightning checkpoint, 64x64 sample,
    written only after bioimageio.core reproduced its test output (check_package)."""
    folder = tmp_path_factory.mktemp("package")
    ckpt = write_lightning_checkpoint(folder / "axons.ckpt", random_unet11(3), "axons")
    overrides = [f"ckpt_path={ckpt}", f"output={folder / 'axons.zip'}", AUTHORS, "halo_px=16"]
    overrides += ["sample.height=64", "sample.width=64", "check_package=true"]
    return export(compose_export(overrides)).path


@pytest.mark.slow
@needs_export_extra
def test_package_is_valid_spec_05(package: Path) -> None:
    from bioimageio.spec import load_description
    from bioimageio.spec.model import v0_5

    descr = load_description(package)
    assert isinstance(descr, v0_5.ModelDescr), descr.validation_summary.format()
    assert descr.validation_summary.status == "valid-format"
    weights = descr.weights
    assert weights.torchscript and weights.onnx and weights.pytorch_state_dict
    assert weights.onnx.opset_version == 18
    names = zipfile.ZipFile(package).namelist()
    for name in ("cover.png", "README.md", "neuroseg_architecture.py", "test_input.npy"):
        assert name in names
    y_axis = descr.inputs[0].axes[2]
    assert (y_axis.size.min, y_axis.size.step) == (64, 32)
    assert [op.id for op in descr.inputs[0].preprocessing] == [
        "ensure_dtype",
        "scale_linear",
        "ensure_dtype",
    ]
    assert descr.outputs[0].axes[1].channel_names == ["background", "neurons", "axons"]
    assert descr.cite[0].doi == "10.48550/arXiv.1801.05746"
    assert descr.authors[0].name == "Test Author"
    assert str(descr.license) == "CC-BY-4.0"


@pytest.mark.slow
@needs_export_extra
def test_bioimageio_core_reproduces_test_output(package: Path) -> None:
    from bioimageio.core import test_model

    summary = test_model(package)
    assert summary.status == "passed", summary.format()
    reproduced = [d.name for d in summary.details if d.name.startswith("Reproduce test outputs")]
    assert len(reproduced) == 3  # torchscript, onnx, pytorch_state_dict


@pytest.mark.slow
@needs_export_extra
def test_bioimageio_core_equals_neuroseg_predict(package: Path, tmp_path: Path) -> None:
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core import predict as core_predict
    from bioimageio.core.digest_spec import create_sample_for_model
    from bioimageio.spec import load_model_description

    gray = sample_gray(96, 128, seed=5)
    write_tiff(tmp_path / "in" / "image.tif", gray)
    ckpt = package.with_name("axons.ckpt")
    with initialize(version_base="1.3", config_path="../conf"):
        cfg = compose(
            "predict",
            overrides=[
                f"ckpt_path={ckpt}",
                f"input={tmp_path / 'in'}",
                f"output={tmp_path / 'out'}",
                "save_probs=true",
                "device=cpu",
            ],
        )
    predict(cfg)  # one window: the image is smaller than 768 x 1024
    expected = np.stack(
        [
            tifffile.imread(tmp_path / "out" / f"image_probs_{name}.tif")
            for name in ("background", "neurons", "axons")
        ]
    )
    descr = load_model_description(package)
    for weight_format in ("torchscript", "onnx", "pytorch_state_dict"):
        pipeline = create_prediction_pipeline(descr, weight_format=weight_format)
        sample = create_sample_for_model(descr, inputs=gray[None, None], sample_id="image")
        # Without the halo's mirror padding, which neuroseg.predict does not do either.
        output = pipeline.predict_sample_without_blocking(
            sample, skip_input_padding=True, skip_output_cropping=True
        )
        got = output.members["probabilities"].data.to_numpy()[0]
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4, weight_format
    # The default call pads by the 16 px halo: same shape, a little more border context.
    padded = core_predict(model=package, inputs=gray[None, None])
    assert padded.members["probabilities"].data.shape == (1, *expected.shape)


@pytest.mark.slow
@needs_export_extra
def test_export_benchmark_times_both_runtimes(tmp_path: Path) -> None:
    from benchmarks.export import run_one

    row = run_one("unet11", (64, 64), opset=18, rounds=1, repeats=1, folder=tmp_path)
    assert row["pytorch_s"] > 0 and row["onnxruntime_s"] > 0
    assert row["ort_over_torch"] == pytest.approx(row["onnxruntime_s"] / row["pytorch_s"], 0.01)
    assert row["max_abs_diff"] <= 1e-4
