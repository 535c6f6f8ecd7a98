"""Segment new images with a trained checkpoint: masks, overlays, optional probabilities, and a
morphometrics table.

    python -m neuroseg.predict ckpt_path=model.ckpt input=images/ [tta=true] [save_probs=true]
        [labels=true]

A folder is searched with its sub-folders, whose layout the outputs repeat: the lab's
`originals/<condition>/<n>.tif` gives `<output>/<condition>/<n>_mask.png`, where analyze looks;
labels=true adds `<output>/labels/<condition>/<labels_prefix>_<n>.png` (and `labels_axons/`), the
lab's painted-label layout, so a corrected copy dropped into the raw tree is read by prepare
(neuroseg/inference/folder.py, paths.py).

An unreadable image is reported by name and skipped; the others are still written, the skipped
ones are listed in failures.csv, and the command exits with status 1.
"""

from __future__ import annotations

from omegaconf import DictConfig

from neuroseg.cli import command
from neuroseg.inference.folder import PredictResult, predict_folder
from neuroseg.inference.settings import inference_settings, prediction_settings


@command("predict")
def main(cfg: DictConfig) -> None:
    """Entry point; exits with status 1 when any image could not be read."""
    if predict(cfg).failures:
        raise SystemExit(1)


def predict(cfg: DictConfig) -> PredictResult:
    """The config as typed settings, then the folder run; what tests call with a composed config."""
    return predict_folder(inference_settings(cfg, stage="predict"), prediction_settings(cfg))


if __name__ == "__main__":
    main()
