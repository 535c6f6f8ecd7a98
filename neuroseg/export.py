"""Share a trained model beyond neuroseg: a BioImage Model Zoo zip, an ONNX or a TorchScript file.

    python -m neuroseg.export ckpt_path=model.ckpt 'package.authors=[{name: Ada Lovelace}]'
    python -m neuroseg.export ckpt_path=model.ckpt format=onnx output=unet11.onnx

Every file is checked against PyTorch before the command succeeds; a bioimage.io zip is also
validated and run by bioimageio.core (`check_package`). Needs `pip install -e ".[export]"`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from neuroseg.cli import command
from neuroseg.data.sample_image import make_image
from neuroseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from neuroseg.errors import ChoiceError, NeurosegError, UsageError
from neuroseg.inference.predictor import load_settings_model
from neuroseg.inference.settings import inference_settings
from neuroseg.io import scale_to_unit
from neuroseg.models.checkpoint import LoadedModel
from neuroseg.models.export import ExportCheck, GrayToProbabilities, write_checked
from neuroseg.models.ternausnet import ENCODERS
from neuroseg.runtime import set_threads
from neuroseg.task import Task

log = logging.getLogger(__name__)

# Format -> (file suffix, modules of the [export] extra it needs).
FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bioimageio": (".zip", ("bioimageio.core", "bioimageio.spec", "onnxruntime", "onnxscript")),
    "onnx": (".onnx", ("onnx", "onnxruntime", "onnxscript")),
    "torchscript": (".pt", ()),
}


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """The written file and how closely each exported weight format reproduces PyTorch."""

    path: Path
    checks: list[ExportCheck]


@command("export")
def main(cfg: DictConfig) -> None:
    export(cfg)


def export(cfg: DictConfig) -> ExportResult:
    """Write `cfg.format` of the checkpoint at `cfg.output` (default: the run folder)."""
    fmt = check_format(cfg.format)
    settings = inference_settings(cfg, stage="export")
    set_threads(settings.threads)
    loaded, task, threshold, _ = load_settings_model(settings)
    model = GrayToProbabilities(loaded.model, IMAGENET_MEAN, IMAGENET_STD).eval()
    output = output_path(cfg, loaded)
    bit_depth = cfg.input_bit_depth if fmt == "bioimageio" else 8
    sample = make_image(
        np.random.default_rng(cfg.sample.seed),
        height=cfg.sample.height,
        width=cfg.sample.width,
        condition=cfg.sample.condition,
        bit_depth=bit_depth,
    ).image
    if fmt == "bioimageio":
        result = export_package(cfg, model, loaded, task, threshold, sample, output)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        check = write_checked(fmt, model, scale_to_unit(sample), output, cfg.opset, cfg.tolerance)
        result = ExportResult(path=output, checks=[check])
    for check in result.checks:
        log.info(
            "%s: max |difference| to PyTorch %.2e (input %s)",
            check.format,
            check.max_abs_diff,
            "x".join(map(str, check.input_shape)),
        )
    log.info("wrote %s", result.path)
    return result


def check_format(fmt: str) -> str:
    """`fmt` when known and its packages are installed; otherwise one line saying what to do."""
    if fmt not in FORMATS:
        raise ChoiceError(f"format={fmt!r}: choose one of {sorted(FORMATS)}")
    missing = [name for name in FORMATS[fmt][1] if not installed(name)]
    if missing:
        raise NeurosegError(f"format={fmt} needs {', '.join(missing)}: pip install -e '.[export]'")
    return fmt


def installed(module: str) -> bool:
    """True when `module` (dotted names too) can be imported; nothing is imported but parents."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def output_path(cfg: DictConfig, loaded: LoadedModel) -> Path:
    """`cfg.output`, or `<run folder>/<encoder>_<task><suffix>`; never the checkpoint itself."""
    suffix = FORMATS[cfg.format][0]
    if cfg.output is None:
        return Path(cfg.paths.output_dir) / f"{loaded.encoder}_{loaded.task}{suffix}"
    output = Path(cfg.output)
    if output.resolve() == Path(cfg.ckpt_path).resolve():
        raise UsageError(f"output={output} is the checkpoint; choose another file name")
    if output.suffix != suffix:
        raise UsageError(f"output={output}: a {cfg.format} file ends in {suffix}; rename it")
    return output


def export_package(
    cfg: DictConfig,
    model: GrayToProbabilities,
    loaded: LoadedModel,
    task: Task,
    threshold: float,
    sample: np.ndarray,
    output: Path,
) -> ExportResult:
    """Write the bioimage.io zip from the config's `package` and settings, then test it."""
    from neuroseg.models.bioimageio import write_package
    from neuroseg.models.bioimageio_settings import PackageInfo, PackageSettings

    package = OmegaConf.to_container(cfg.package, resolve=True)
    if package["name"] is None:
        classes = " and ".join(task.foreground)
        package["name"] = f"neuroseg {ENCODERS[loaded.encoder].__name__} {classes}"
    settings = PackageSettings(
        input_bit_depth=cfg.input_bit_depth,
        halo_px=cfg.halo_px,
        opset=cfg.opset,
        tolerance=cfg.tolerance,
        overlay_colors=tuple(tuple(color) for color in cfg.overlay.colors),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    info = PackageInfo(**package)
    result = write_package(
        model, loaded.encoder, task, threshold, sample, info, settings, output, cfg.check_package
    )
    if cfg.check_package:
        log.info("bioimageio.core reproduced the test output from every weight format")
    return ExportResult(path=result.path, checks=result.checks)


if __name__ == "__main__":
    main()
