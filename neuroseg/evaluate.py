"""Score a checkpoint on a prepared split, per tile and per source image re-assembled from tiles.

    python -m neuroseg.evaluate ckpt_path=model.ckpt [split=test] [tune_threshold=true]

Writes per_image.csv, per_tile.csv, summary.csv, confusion_matrix.csv, masks/<image_id>.png,
overlays/<image_id>.png, report.html (all of it on one page) and TensorBoard scalars + a text
table into the run folder (neuroseg/evaluation/evaluator.py).
"""

from __future__ import annotations

from omegaconf import DictConfig

from neuroseg.cli import command
from neuroseg.evaluation.evaluator import evaluate_checkpoint
from neuroseg.evaluation.settings import evaluation_settings
from neuroseg.inference.settings import inference_settings


@command("evaluate")
def main(cfg: DictConfig) -> float:
    """Entry point; returns the mean over images of per-image IoU so a sweep can optimise it."""
    metrics = evaluate(cfg)
    print(f"tables, masks and overlays in {cfg.output}; on one page: {cfg.output}/report.html")
    return metrics[f"{cfg.split}/image_iou"]


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """The config as typed settings, then the scoring run (tests call it with a composed config)."""
    return evaluate_checkpoint(inference_settings(cfg, stage="evaluate"), evaluation_settings(cfg))


if __name__ == "__main__":
    main()
