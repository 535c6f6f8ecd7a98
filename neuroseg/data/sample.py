"""The demo's sample dataset: synthetic lab-like images, prepared once and reused after."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from neuroseg import io, locks
from neuroseg.data.build import prepare_dataset
from neuroseg.data.sample_tree import PAINT_RGB, make_dataset
from neuroseg.errors import UsageError

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
    asked = sample_settings(synth, prepare)
    # Several ranks (or runs) may start at once: the first makes the sample, the others wait
    # for it here and then reuse it, instead of refusing or writing the same trees twice.
    with locks.dir_lock(prepared_dir, wait=True):
        return make_sample_tree(raw_dir, prepared_dir, asked, synth, prepare)


def make_sample_tree(
    raw_dir: Path,
    prepared_dir: Path,
    asked: Mapping[str, Any],
    synth: Mapping[str, Any],
    prepare: Mapping[str, Any],
) -> Path:
    """ensure_sample's work, under its lock: reuse, or synthesise and prepare."""
    record = prepared_dir / SAMPLE_RECORD
    if (prepared_dir / "manifest.csv").is_file():
        if record.is_file():
            check_same(prepared_dir, io.read_json(record), asked, raw_dir)
        else:
            log.warning(f"{prepared_dir}: reused; it records no sample settings to check")
        return prepared_dir
    saved_synth = raw_dir / "truth" / "settings.json"
    if not (raw_dir / "originals").is_dir():
        log.info(f"making the sample raw tree in {raw_dir}")
        make_dataset(raw_dir, **synth)
    elif saved_synth.is_file():
        check_same(raw_dir, {"synth": io.read_json(saved_synth)}, asked, prepared_dir)
    else:
        log.warning(f"{raw_dir}: reused; it records no sample settings to check")
    log.info(f"preparing {raw_dir} into {prepared_dir}")
    prepare_dataset(raw_dir=raw_dir, out_dir=prepared_dir, **prepare)
    io.write_json(record, asked)
    return prepared_dir


SAMPLE_RECORD = "sample.json"  # the settings a prepared sample tree was made with
# Keys that change how fast or how strictly a tree is made, never its files.
NOT_SETTINGS = {"out_dir", "raw_dir", "workers", "overwrite", "strict", "progress"}


def full_keywords(function: Callable[..., Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` plus `function`'s defaults for the keywords it leaves out, less NOT_SETTINGS."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    merged = defaults | dict(given)
    return {key: value for key, value in merged.items() if key not in NOT_SETTINGS}


def sample_settings(synth: Mapping[str, Any], prepare: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting the sample's files depend on, as JSON gives it back (tuples as lists).

    Same keys and values as make_dataset's truth/settings.json, whose paints are the merged ones.
    """
    synth = full_keywords(make_dataset, synth)
    synth["paint_rgb"] = PAINT_RGB | dict(synth.get("paint_rgb") or {})
    if synth.get("style", "clean") == "clean":  # as make_dataset records a clean tree
        synth.pop("style", None)
        synth.pop("lab", None)
    elif is_dataclass(synth.get("lab")):
        synth["lab"] = asdict(synth["lab"])
    settings = {"synth": synth, "prepare": full_keywords(prepare_dataset, prepare)}
    return json.loads(json.dumps(settings))


def check_same(folder: Path, saved: Mapping, asked: Mapping, other: Path) -> None:
    """Raise ValueError naming every `section.key` whose saved value differs from the asked one.

    Only the sections `saved` holds are compared (a raw tree records `synth` alone).
    """
    differ = [
        f"{section}.{key}={saved[section].get(key)!r} (asked: {value!r})"
        for section in saved.keys() & asked.keys()
        for key, value in asked[section].items()
        if saved[section].get(key) != value
    ]
    if differ:
        raise UsageError(
            f"{folder} was made with other sample settings: {'; '.join(sorted(differ))}. "
            f"Delete {folder} and {other} to remake them, or set paths.data_dir=<another folder>"
        )
