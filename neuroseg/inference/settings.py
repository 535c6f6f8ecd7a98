"""What predict, evaluate and the napari plugin share: the checkpoint, the device, the sliding
window, the threshold, post-processing and overlay colours (conf/inference/default.yaml).

The config becomes an `InferenceSettings` once per run (`inference_settings`), with the precision
this device really runs already resolved; the library takes the settings, never the config.
Importing this module registers `inference/schema` with Hydra, so a wrong type
(`overlap=abc`, `window=[64,x]`) fails when the config is composed, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from neuroseg import runtime
from neuroseg.errors import UsageError
from neuroseg.inference.window import PRECISIONS, check_window


@dataclass(frozen=True)
class PostprocessSettings:
    """neuroseg/inference/postprocess.py's options; off by default, so scores describe the net."""

    min_object_px: int = 0
    fill_holes: bool = False


@dataclass(frozen=True)
class OverlaySettings:
    """Colours of neuroseg/inference/overlay.py: RGB per foreground class, evaluate's outline."""

    alpha: float = 0.5
    colors: list[list[int]] = field(default_factory=lambda: [[0, 255, 0], [255, 0, 0]])
    outline_color: list[int] = field(default_factory=lambda: [255, 255, 0])


@dataclass(frozen=True)
class InferenceSettings:
    """The keys of conf/inference/default.yaml, typed; `encoder`/`task` hold option names."""

    ckpt_path: str | None = None
    trust_checkpoint: bool = False
    encoder: str | None = None
    task: str | None = None
    device: str = "auto"
    threads: int | None = None
    window: list[int] = field(default_factory=lambda: [768, 1024])
    overlap: float = 0.25
    batch_size: int = 2
    tta: bool = False
    precision: str = "32"
    threshold: float | None = None
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)
    overlay: OverlaySettings = field(default_factory=OverlaySettings)
    progress: bool = True

    def __post_init__(self) -> None:
        """Refuse values no run could use before a checkpoint is loaded or an image read."""
        check_window(self.window)
        if not 0.0 <= self.overlap < 1.0:
            raise UsageError(f"overlap={self.overlap}: choose a fraction in [0, 1)")
        if self.batch_size < 1:
            raise UsageError(f"batch_size={self.batch_size}: choose 1 or more")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision={self.precision}: choose one of {list(PRECISIONS)}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise UsageError(f"threshold={self.threshold}: choose a probability in [0, 1]")


# Config group selections (`encoder=vgg16` puts the whole conf/encoder/vgg16.yaml there), left
# untyped in the schema; the settings keep only the option's name.
SELECTED_GROUPS = ("encoder", "task")


def group_name(value: DictConfig | str | None) -> str | None:
    """Name of a selected config group option (`encoder=vgg16` -> "vgg16"); None when unset."""
    if value is None or isinstance(value, str):
        return value
    return str(value.name)


def typed_node(cls: type) -> DictConfig:
    """`cls` as an OmegaConf node YAML values merge into: a frozen dataclass makes its node (and
    its nested ones) read-only, which would refuse every value the YAML and the overrides set."""
    node = OmegaConf.structured(cls)

    def unfreeze(container: DictConfig) -> None:
        OmegaConf.set_readonly(container, None)
        for key in container:
            child = container._get_node(key)
            if isinstance(child, DictConfig):
                unfreeze(child)

    unfreeze(node)
    return node


def schema_node() -> DictConfig:
    """Hydra's schema for conf/inference/default.yaml: one typed node per key, in an untyped root.

    The file is `@package _global_`, so its keys sit beside evaluate's and predict's own. A
    dataclass node merged there would type the whole root and refuse those keys (data_dir,
    input, ...); typing each key on its own keeps them while a wrong value fails at compose.
    """
    typed = typed_node(InferenceSettings)
    nodes = {f.name: typed._get_node(f.name) for f in fields(InferenceSettings)}
    return OmegaConf.create({k: v for k, v in nodes.items() if k not in SELECTED_GROUPS})


ConfigStore.instance().store(group="inference", name="schema", node=schema_node())


def inference_settings(cfg: DictConfig, stage: str) -> InferenceSettings:
    """The inference keys of a predict/evaluate config as settings, once per run; bf16 asked of
    a device without native bf16 becomes "32", with one warning in `stage`'s words."""
    values: dict[str, Any] = {
        f.name: cfg[f.name] for f in fields(InferenceSettings) if f.name in cfg
    }
    values |= {key: group_name(values[key]) for key in SELECTED_GROUPS if key in values}
    typed = OmegaConf.merge(typed_node(InferenceSettings), values)
    settings: InferenceSettings = OmegaConf.to_object(typed)  # type: ignore[assignment]
    return replace(settings, precision=runnable_precision(settings, stage))


def runnable_precision(settings: InferenceSettings, stage: str) -> str:
    """settings.precision, or "32" where its device only emulates bf16 (slower than float32)."""
    accelerator = "gpu" if settings.device.startswith("cuda") else settings.device
    resolved = runtime.resolve_precision(accelerator, settings.precision, stage=stage)
    return settings.precision if "bf16" in str(resolved) else "32"


@dataclass(frozen=True)
class LabelCopies:
    """labels=true: predictions painted in the palette's colours as `<prefix>_<n>.png` copies."""

    colors: Mapping[str, Mapping[str, object]]
    prefix: str = "pred"
    closing_radius: int = 0  # the palette's: prepare closes painted labels by it


@dataclass(frozen=True)
class PredictionSettings:
    """predict's own keys (conf/predict.yaml): what to read, where to write, what to add."""

    input: Path
    output: Path
    save_probs: bool = False
    min_neuron_px: int = 50
    labels: LabelCopies | None = None


def prediction_settings(cfg: DictConfig) -> PredictionSettings:
    """predict's keys of a composed config (and its palette, for label copies), once per run."""
    if cfg.get("input") is None:
        raise UsageError("input is not set; pass input=<image file or folder of images>")
    labels = None
    if cfg.labels:
        colors = OmegaConf.to_container(cfg.palette.colors, resolve=True)
        labels = LabelCopies(colors, str(cfg.labels_prefix), int(cfg.palette.closing_radius or 0))
    return PredictionSettings(
        input=Path(cfg.input),
        output=Path(cfg.output),
        save_probs=bool(cfg.save_probs),
        min_neuron_px=int(cfg.min_neuron_px),
        labels=labels,
    )
