"""The demo's sample dataset: synthetic lab-like images, prepared once and reused after."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neuroseg import io
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
    (experiment=demo's `sample` section). Trees already there are reused when they were made
    with the same settings; other settings raise an error instead of being silently ignored.
    """
    raw_dir, prepared_dir = Path(raw_dir), Path(prepared_dir)
    asked = as_json({"synth": synth, "prepare": prepare})
    record = prepared_dir / SAMPLE_RECORD
    if (prepared_dir / "manifest.csv").is_file():
        if record.is_file():
            check_same(prepared_dir, io.read_json(record), asked, raw_dir)
        else:
            log.warning(f"{prepared_dir}: reused; it records no sample settings to check")
        return prepared_dir
    if not (raw_dir / "originals").is_dir():
        log.info(f"making the sample raw tree in {raw_dir}")
        make_dataset(raw_dir, **synth)
    elif (raw_dir / "truth" / "settings.json").is_file():
        saved = io.read_json(raw_dir / "truth" / "settings.json")
        check_same(raw_dir, {"synth": saved}, {"synth": asked["synth"]}, prepared_dir)
    log.info(f"preparing {raw_dir} into {prepared_dir}")
    prepare_dataset(raw_dir=raw_dir, out_dir=prepared_dir, **prepare)
    io.write_json(record, asked)
    return prepared_dir


SAMPLE_RECORD = "sample.json"  # the settings a prepared sample tree was made with


def as_json(value: Any) -> Any:
    """`value` as JSON would give it back (tuples as lists), so saved and asked compare equal."""
    return json.loads(json.dumps(value))


def check_same(folder: Path, saved: Mapping, asked: Mapping, other: Path) -> None:
    """Raise ValueError naming every `section.key` whose saved value differs from the asked one."""
    differ = [
        f"{section}.{key}={saved[section][key]!r} (asked: {value!r})"
        for section, keys in asked.items()
        for key, value in keys.items()
        if key in saved.get(section, {}) and saved[section][key] != value
    ]
    if differ:
        raise ValueError(
            f"{folder} was made with other sample settings: {'; '.join(differ)}. Delete {folder} "
            f"and {other} to remake them, or set paths.data_dir=<another folder>"
        )
