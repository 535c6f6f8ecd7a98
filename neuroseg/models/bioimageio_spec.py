"""A bioimage.io package's spec-0.5 description (its rdf.yaml), built part by part (inputs,
outputs, weights, metadata) with bioimageio.spec, which validates each part as it is made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from bioimageio.spec.model import v0_5

from neuroseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from neuroseg.inference.window import SIZE_MULTIPLE
from neuroseg.models.bioimageio_settings import (
    PackageInfo,
    PackageSettings,
    input_dtype,
    min_input_px,
    output_channels,
)
from neuroseg.models.export import ARCHITECTURE_CALLABLE
from neuroseg.task import Task

INPUT_ID = v0_5.TensorId("input")


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


def input_descr(test_input: Path, settings: PackageSettings) -> v0_5.InputTensorDescr:
    """The raw gray input (batch, channel, y, x), scaled to [0, 1] float32 by the spec."""
    size = v0_5.ParameterizedSize(min=min_input_px(settings.halo_px), step=SIZE_MULTIPLE)
    space_in = [v0_5.SpaceInputAxis(id=v0_5.AxisId(axis), size=size) for axis in ("y", "x")]
    float32 = v0_5.EnsureDtypeDescr(kwargs=v0_5.EnsureDtypeKwargs(dtype="float32"))
    return v0_5.InputTensorDescr(
        id=INPUT_ID,
        description="gray brightfield image, raw 8- or 16-bit values",
        axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=["gray"]), *space_in],
        data=v0_5.IntervalOrRatioDataDescr(type=input_dtype(settings.input_bit_depth)),
        test_tensor=v0_5.FileDescr(source=test_input),
        # Ends in float32 explicitly: the spec otherwise casts back to the input's dtype.
        preprocessing=[
            float32,
            v0_5.ScaleLinearDescr(
                kwargs=v0_5.ScaleLinearKwargs(gain=1.0 / (2**settings.input_bit_depth - 1))
            ),
            float32,
        ],
    )


def output_descr(
    test_output: Path, task: Task, settings: PackageSettings
) -> v0_5.OutputTensorDescr:
    """The probabilities (batch, channel, y, x), the input's size, a halo wide at each edge."""
    same_size = {
        axis: v0_5.SizeReference(tensor_id=INPUT_ID, axis_id=v0_5.AxisId(axis))
        for axis in ("y", "x")
    }
    space_out = [
        v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(axis), halo=settings.halo_px, size=size)
        if settings.halo_px
        else v0_5.SpaceOutputAxis(id=v0_5.AxisId(axis), size=size)
        for axis, size in same_size.items()
    ]
    return v0_5.OutputTensorDescr(
        id=v0_5.TensorId("probabilities"),
        description="class probabilities (sigmoid or softmax inside the network)",
        axes=[
            v0_5.BatchAxis(),
            v0_5.ChannelAxis(channel_names=output_channels(task)),
            *space_out,
        ],
        data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        test_tensor=v0_5.FileDescr(source=test_output),
    )


def weights_descr(
    files: PackageFiles, encoder: str, task: Task, settings: PackageSettings
) -> v0_5.WeightsDescr:
    """TorchScript, ONNX (converted from it) and the state dict with its architecture source."""
    pytorch_version = v0_5.Version(torch.__version__.split("+")[0])
    return v0_5.WeightsDescr(
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


def bioimageio_config(
    encoder: str, task: Task, settings: PackageSettings, parameter_count: int
) -> v0_5.Config:
    """bioimage.io's metadata: test tolerance, architecture, modality, targets, size."""
    tolerance = v0_5.ReproducibilityTolerance(
        absolute_tolerance=settings.tolerance,
        relative_tolerance=0.0,
        mismatched_elements_per_million=0,
    )
    return v0_5.Config(
        bioimageio=v0_5.BioimageioConfig(
            reproducibility_tolerance=[tolerance],
            architecture_type="U-Net",
            architecture_description=f"TernausNet, {encoder.upper()} encoder",
            modality="brightfield microscopy",
            target_structure=[name for name in task.class_names[1:]],
            task="semantic segmentation",
            model_parameter_count=parameter_count,
        )
    )


def describe(
    files: PackageFiles,
    info: PackageInfo,
    encoder: str,
    task: Task,
    settings: PackageSettings,
    parameter_count: int,
) -> v0_5.ModelDescr:
    """The package's spec-0.5 description, built (and so validated) by bioimageio.spec."""
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
        inputs=[input_descr(files.test_input, settings)],
        outputs=[output_descr(files.test_output, task, settings)],
        weights=weights_descr(files, encoder, task, settings),
        config=bioimageio_config(encoder, task, settings, parameter_count),
    )
