"""The demo's sample dataset: synthetic lab-like images, prepared once and reused after."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neuroseg.data.prepare import prepare_dataset
from neuroseg.data.synth_tree import make_dataset

log = logging.getLogger(__name__)


def ensure_sample(
    raw_dir: str | Path,
    prepared_dir: str | Path,
    synth: Mapping[str, Any],
    prepare: Mapping[str, Any],
) -> Path:
    """The prepared sample tree at `prepared_dir`, synthesised and prepared first if missing.

    `synth` holds `make_dataset` keys, `prepare` holds `prepare_dataset` keys, as plain values
    (experiment=demo's `sample` section). A raw tree already at `raw_dir` is reused; delete both
    folders to start over.
    """
    raw_dir, prepared_dir = Path(raw_dir), Path(prepared_dir)
    if (prepared_dir / "manifest.csv").is_file():
        return prepared_dir
    if not (raw_dir / "originals").is_dir():
        log.info(f"making the sample raw tree in {raw_dir}")
        make_dataset(raw_dir, **synth)
    log.info(f"preparing {raw_dir} into {prepared_dir}")
    prepare_dataset(raw_dir=raw_dir, out_dir=prepared_dir, **prepare)
    return prepared_dir
