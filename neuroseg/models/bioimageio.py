"""A BioImage Model Zoo package (bioimage.io, spec 0.5) of a trained network: one zip that Fiji
(deepImageJ), ilastik, QuPath, napari and `bioimageio.core` can run.

The package's input is the lab's raw gray image (uint8 or uint16, axes batch, channel, y, x). Its
preprocessing is the spec's `scale_linear` to [0, 1]; the gray-to-RGB repeat and the ImageNet
mean/std per RGB channel cannot be spec operations on a one-channel input (the spec has no repeat,
and per-channel statistics need the three channels), so they sit in the wrapped network with
the final sigmoid/softmax (`neuroseg.models.export.GrayToProbabilities`). Every weight format
(TorchScript, ONNX, PyTorch state dict with its architecture source) computes the same function.
"""

from __future__ import annotations

import dataclasses
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bioimageio.core import test_model
from bioimageio.spec import save_bioimageio_package
from bioimageio.spec.model import v0_5

from neuroseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from neuroseg.inference.overlay import gray_to_rgb8, overlay
from neuroseg.inference.window import SIZE_MULTIPLE, probs_to_mask
from neuroseg.io import atomic_path, scale_to_unit, write_png
from neuroseg.models.export import (
    ARCHITECTURE_CALLABLE,
    ARCHITECTURE_FILE,
    ExportCheck,
    GrayToProbabilities,
    architecture_source,
    check_export,
    probe_inputs,
    write_onnx,
    write_torchscript,
)
from neuroseg.models.ternausnet import ENCODERS
from neuroseg.task import Task


@dataclass(frozen=True)
class PackageInfo:
    """What the package says about itself: conf/export.yaml `package`, as plain values."""

    name: str
    description: str
    authors: list[dict[str, str]]
    license: str
    version: str
    tags: list[str]
    cite: list[dict[str, str]]
    training_data: str
    git_repo: str | None = None


@dataclass(frozen=True)
class PackageSettings:
    """How the package runs and how strictly it is checked (conf/export.yaml)."""

    input_bit_depth: int = 8
    halo_px: int = 64
    opset: int = 18
    tolerance: float = 1e-4
    overlay_colors: tuple[tuple[int, int, int], ...] = ((0, 255, 0), (255, 0, 0))


@dataclass(frozen=True)
class PackageResult:
    """The written zip and how closely its TorchScript and ONNX weights reproduce PyTorch."""

    path: Path
    checks: list[ExportCheck]


def input_dtype(bit_depth: int) -> str:
    """numpy/spec dtype of the package's raw input: uint8 or uint16."""
    if bit_depth not in (8, 16):
        raise ValueError(f"input_bit_depth={bit_depth}: choose 8 or 16")
    return f"uint{bit_depth}"


def min_input_px(halo_px: int) -> int:
    """Smallest input side: the first multiple of 32 that leaves output after cropping 2 halos."""
    return (2 * halo_px // SIZE_MULTIPLE + 1) * SIZE_MULTIPLE


def output_channels(task: Task) -> list[str]:
    """Names of the probability channels, as predict names its probability files."""
    return list(task.class_names[1:] if task.out_channels == 1 else task.class_names)


def cover_image(gray: np.ndarray, mask: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """(H, 2W, 3) uint8: the gray image | its classes over it (bioimage.io's 2:1 cover)."""
    return np.concatenate([gray_to_rgb8(gray), overlay(gray, mask, colors)], axis=1)


def readme_text(
    info: PackageInfo, encoder: str, task: Task, threshold: float, settings: PackageSettings
) -> str:
    """The package's README.md: what goes in, what comes out, how to tile, what it learnt from."""
    top = 2**settings.input_bit_depth - 1
    channels = output_channels(task)
    if task.out_channels == 1:
        activation = "sigmoid"
        mask = f"a neuron mask is probability > {threshold:.3g} (the checkpoint's threshold)"
    else:
        activation = "softmax over the channels"
        mask = "the class map is the argmax over the channels"
    citations = "\n".join(f"- {entry['text']}" for entry in info.cite)
    return f"""# {info.name}

{info.description}

## Input and output
- **Input** `input`: one gray brightfield image, {input_dtype(settings.input_bit_depth)}, axes
  batch, channel (1), y, x. Height and width: any multiple of {SIZE_MULTIPLE}, at least
  {min_input_px(settings.halo_px)} px. Larger images: pad to a multiple of {SIZE_MULTIPLE} or tile.
- **Preprocessing** (spec operations): float32, then `scale_linear` by 1/{top} to [0, 1].
- **Inside the network**: the gray channel is repeated to RGB and normalised with the ImageNet
  mean {list(IMAGENET_MEAN)} and std {list(IMAGENET_STD)} per channel (the VGG encoder's
  pretraining); the spec cannot repeat channels, so these steps are part of the weights.
- **Output** `probabilities`: float32 in [0, 1], channels {channels} ({activation}, part of the
  weights), same height and width as the input; {mask}.
- **Tiling**: the halo is {settings.halo_px} px: tiles overlap by {2 * settings.halo_px} px and
  each output tile loses {settings.halo_px} px per side, where pixels saw less context.
  `bioimageio.core.predict` also mirror-pads a whole image by the halo before the network and
  crops it after; neuroseg's own `predict` does not (it reflect-pads only up to a multiple of
  {SIZE_MULTIPLE}, and blends 768 x 1024 windows overlapping by 25 % with a cosine taper), so
  the two agree to 1e-4 on one window only when core runs without that padding
  (`predict_sample_without_blocking(sample, skip_input_padding=True,
  skip_output_cropping=True)`), or with a package exported with `halo_px=0`.

## Network
TernausNet {ENCODERS[encoder].__name__}: a U-Net whose encoder is
{encoder.upper()} (torchvision layout), trained with neuroseg. Weights: TorchScript, ONNX (opset
{settings.opset}) and a PyTorch state dict with its architecture source; all compute the same
function (checked to within {settings.tolerance:.0e}).

## Training data
{info.training_data}

## Use it
- Fiji: deepImageJ > Install model > from a zip file, then run it on a gray image.
- napari: the bioimage.io plugin (napari-bioimageio), or in Python
  `bioimageio.core.predict(model="<this zip>", inputs=image[None, None])`.
- Command line: `bioimageio test <this zip>` reproduces the test output.

## Cite
{citations}
"""


@dataclass(frozen=True)
class PackageFiles:
    """The staged files a description points at (all in one temporary folder)."""

    torchscript: Path
    onnx: Path
    state_dict: Path
    architecture: Path
    test_input: Path
    test_output: Path
    cover: Path
    readme: Path


def describe(
    files: PackageFiles,
    info: PackageInfo,
    encoder: str,
    task: Task,
    settings: PackageSettings,
    parameter_count: int,
) -> v0_5.ModelDescr:
    """The package's spec-0.5 description, built (and so validated) by bioimageio.spec."""
    size = v0_5.ParameterizedSize(min=min_input_px(settings.halo_px), step=SIZE_MULTIPLE)
    input_id = v0_5.TensorId("input")
    space_in = [v0_5.SpaceInputAxis(id=v0_5.AxisId(axis), size=size) for axis in ("y", "x")]
    same_size = {
        axis: v0_5.SizeReference(tensor_id=input_id, axis_id=v0_5.AxisId(axis))
        for axis in ("y", "x")
    }
    space_out = [
        v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(axis), halo=settings.halo_px, size=size)
        if settings.halo_px
        else v0_5.SpaceOutputAxis(id=v0_5.AxisId(axis), size=size)
        for axis, size in same_size.items()
    ]
    float32 = v0_5.EnsureDtypeDescr(kwargs=v0_5.EnsureDtypeKwargs(dtype="float32"))
    gray = v0_5.InputTensorDescr(
        id=input_id,
        description="gray brightfield image, raw 8- or 16-bit values",
        axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=["gray"]), *space_in],
        data=v0_5.IntervalOrRatioDataDescr(type=input_dtype(settings.input_bit_depth)),
        test_tensor=v0_5.FileDescr(source=files.test_input),
        # Ends in float32 explicitly: the spec otherwise casts back to the input's dtype.
        preprocessing=[
            float32,
            v0_5.ScaleLinearDescr(
                kwargs=v0_5.ScaleLinearKwargs(gain=1.0 / (2**settings.input_bit_depth - 1))
            ),
            float32,
        ],
    )
    probs = v0_5.OutputTensorDescr(
        id=v0_5.TensorId("probabilities"),
        description="class probabilities (sigmoid or softmax inside the network)",
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(channel_names=output_channels(task)),
            *space_out,
        ],
        data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        test_tensor=v0_5.FileDescr(source=files.test_output),
    )
    pytorch_version = v0_5.Version(torch.__version__.split("+")[0])
    weights = v0_5.WeightsDescr(
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=files.torchscript, pytorch_version=pytorch_version
        ),
        onnx=v0_5.OnnxWeightsDescr(
            source=files.onnx, opset_version=settings.opset, parent="torchscript"
        ),
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=files.state_dict,
            pytorch_version=pytorch_version,
            architecture=v0_5.ArchitectureFromFileDescr(
                source=files.architecture,
                callable=ARCHITECTURE_CALLABLE,
                kwargs={
                    "encoder": encoder,
                    "num_classes": task.out_channels,
                    "mean": list(IMAGENET_MEAN),
                    "std": list(IMAGENET_STD),
                },
            ),
        ),
    )
    tolerance = v0_5.ReproducibilityTolerance(
        absolute_tolerance=settings.tolerance,
        relative_tolerance=0.0,
        mismatched_elements_per_million=0,
    )
    return v0_5.ModelDescr(
        name=info.name,
        description=info.description,
        authors=[v0_5.Author(**author) for author in info.authors],
        cite=[v0_5.CiteEntry(**entry) for entry in info.cite],
        license=info.license,
        version=info.version,
        tags=info.tags,
        git_repo=info.git_repo,
        documentation=v0_5.FileDescr(source=files.readme),
        covers=[v0_5.FileDescr(source=files.cover)],
        inputs=[gray],
        outputs=[probs],
        weights=weights,
        config=v0_5.Config(
            bioimageio=v0_5.BioimageioConfig(
                reproducibility_tolerance=[tolerance],
                architecture_type="U-Net",
                architecture_description=f"TernausNet, {encoder.upper()} encoder",
                modality="brightfield microscopy",
                target_structure=[name for name in task.class_names[1:]],
                task="semantic segmentation",
                model_parameter_count=parameter_count,
            )
        ),
    )


def write_package(
    model: GrayToProbabilities,
    encoder: str,
    task: Task,
    threshold: float,
    sample: np.ndarray,
    info: PackageInfo,
    settings: PackageSettings,
    output: Path,
    verify: bool = True,
) -> PackageResult:
    """Write the bioimage.io zip at `output`: TorchScript and ONNX (both checked against PyTorch
    on `sample`), the state dict with its architecture source, test tensors made from `sample`
    (a gray (H, W) image of the input dtype), a cover, and the README. With `verify`, the zip
    reaches `output` only after bioimageio.core has reproduced its test output (`verify_package`).
    """
    if not info.authors:
        raise ValueError(
            "package.authors is empty; bioimage.io lists who made a model: pass "
            "'package.authors=[{name: Your Name, affiliation: Your Lab}]'"
        )
    check_sample(sample, settings)
    unit = scale_to_unit(sample)
    example = torch.from_numpy(unit[None, None])
    with torch.inference_mode():
        expected = model(example).numpy()
    # Staged in a temporary folder next to the output, which only the finished zip leaves.
    with tempfile.TemporaryDirectory(prefix=f".{output.stem}.", dir=output.parent) as folder:
        stage = Path(folder)
        files = PackageFiles(
            torchscript=write_torchscript(model, stage / "weights_torchscript.pt", example),
            onnx=write_onnx(model, stage / "weights.onnx", example, settings.opset),
            state_dict=stage / "weights_state_dict.pt",
            architecture=stage / ARCHITECTURE_FILE,
            test_input=stage / "test_input.npy",
            test_output=stage / "test_output.npy",
            cover=stage / "cover.png",
            readme=stage / "README.md",
        )
        checks = [
            check_export(path, fmt, model, probe_inputs(unit), settings.tolerance)
            for path, fmt in ((files.torchscript, "torchscript"), (files.onnx, "onnx"))
        ]
        # Name each checked file as the zip holds it; the staging folder goes away.
        checks = [dataclasses.replace(check, path=Path(check.path.name)) for check in checks]
        torch.save(model.state_dict(), files.state_dict)
        files.architecture.write_text(architecture_source())
        np.save(files.test_input, sample[None, None])
        np.save(files.test_output, expected)
        mask = probs_to_mask(expected[0], threshold)
        write_png(files.cover, cover_image(sample, mask, settings.overlay_colors))
        files.readme.write_text(readme_text(info, encoder, task, threshold, settings))
        parameters = sum(p.numel() for p in model.parameters())
        descr = describe(files, info, encoder, task, settings, parameters)
        with atomic_path(output) as tmp:
            # Float weights barely deflate (a few %), and storing is ~10x faster than level 1.
            save_bioimageio_package(descr, output_path=tmp, compression=zipfile.ZIP_STORED)
            if verify:
                try:
                    verify_package(tmp)
                except ValueError as error:
                    raise ValueError(f"{output} not written: {error}") from None
    return PackageResult(path=output, checks=checks)


def check_sample(sample: np.ndarray, settings: PackageSettings) -> None:
    """Raise ValueError unless `sample` is a gray image of the package's input dtype whose sides
    are multiples of 32, at least the package's minimum input."""
    dtype = input_dtype(settings.input_bit_depth)
    smallest = min_input_px(settings.halo_px)
    if sample.ndim != 2 or sample.dtype != dtype:
        raise ValueError(
            f"sample image {sample.shape} {sample.dtype}: expected gray (H, W) {dtype}; "
            "set sample.bit_depth to input_bit_depth"
        )
    if any(side % SIZE_MULTIPLE or side < smallest for side in sample.shape):
        raise ValueError(
            f"sample image {sample.shape[0]}x{sample.shape[1]}: sides must be multiples of "
            f"{SIZE_MULTIPLE} and at least {smallest} (2 x halo_px={settings.halo_px}, rounded "
            "up); set sample.height and sample.width"
        )


def verify_package(path: Path) -> None:
    """Validate the zip with bioimageio.spec and reproduce its test output from every weight
    format with bioimageio.core; ValueError listing the failed checks otherwise."""
    summary = test_model(path)
    if summary.status != "passed":
        failed = [f"{d.name}: {[e.msg for e in d.errors]}" for d in summary.details if d.errors]
        raise ValueError(f"{path}: bioimageio.core test {summary.status}: {failed}")
