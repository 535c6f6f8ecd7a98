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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from bioimageio.core import test_model
from bioimageio.spec import save_bioimageio_package

from neuroseg.inference.window import SIZE_MULTIPLE, probs_to_mask
from neuroseg.io import atomic_path, scale_to_unit, write_png
from neuroseg.models.bioimageio_docs import cover_image, readme_text
from neuroseg.models.bioimageio_settings import (
    PackageInfo,
    PackageSettings,
    input_dtype,
    min_input_px,
)
from neuroseg.models.bioimageio_spec import PackageFiles, describe
from neuroseg.models.export import (
    ARCHITECTURE_FILE,
    ExportCheck,
    GrayToProbabilities,
    architecture_source,
    check_export,
    probe_inputs,
    write_onnx,
    write_torchscript,
)
from neuroseg.task import Task


@dataclass(frozen=True)
class PackageResult:
    """The written zip and how closely its TorchScript and ONNX weights reproduce PyTorch."""

    path: Path
    checks: list[ExportCheck]


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
        files, checks = stage_weights(model, Path(folder), unit, settings)
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


def stage_weights(
    model: GrayToProbabilities, stage: Path, unit: np.ndarray, settings: PackageSettings
) -> tuple[PackageFiles, list[ExportCheck]]:
    """Write every weight format of `model` into `stage`, traced on the gray (H, W) `unit` in
    [0, 1]; the TorchScript and ONNX files are checked against PyTorch before they are kept."""
    example = torch.from_numpy(unit[None, None])
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
    return files, checks


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
