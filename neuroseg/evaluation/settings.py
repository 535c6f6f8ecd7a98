"""evaluate's own settings (beside the shared inference ones): the split to score, where to write,
and the threshold grid, typed once per run from the composed config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from neuroseg.configs import settings
from neuroseg.evaluation.threshold import ThresholdGrid
from neuroseg.inference.settings import typed_node
from neuroseg.report.settings import ReportSettings


@dataclass(frozen=True)
class EvaluationSettings:
    """evaluate's own keys (conf/evaluate.yaml): what to score and where the files go."""

    data_dir: Path
    output: Path
    report: ReportSettings  # report.html (conf/report/)
    split: str = "test"
    tune_threshold: bool = False
    threshold_grid: ThresholdGrid = field(default_factory=ThresholdGrid)


def evaluation_settings(cfg: DictConfig) -> EvaluationSettings:
    """evaluate's keys of a composed config as settings, once per run; a mistyped grid value
    fails here in one line naming it, before the checkpoint is loaded."""
    typed = OmegaConf.create({"threshold_grid": typed_node(ThresholdGrid)})
    typed.merge_with({"threshold_grid": cfg.threshold_grid})
    return EvaluationSettings(
        data_dir=Path(cfg.data_dir),
        output=Path(cfg.output),
        report=settings(ReportSettings, cfg.report),
        split=str(cfg.split),
        tune_threshold=bool(cfg.tune_threshold),
        threshold_grid=OmegaConf.to_object(typed.threshold_grid),  # type: ignore[arg-type]
    )
