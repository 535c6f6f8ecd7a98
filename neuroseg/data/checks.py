"""What prepare checks before it writes anything: every input decoded and tileable (all
problems raised at once), and an out_dir that is no input and holds nothing but a dataset
prepare may replace."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path

from neuroseg.data.pairing import (
    LABELS,
    LABELS_AXONS,
    ORIGINALS,
    Pairing,
    SourceCheck,
    check_source,
    find_duplicates,
    log_pairing,
)
from neuroseg.data.tiling import check_tile_size
from neuroseg.errors import InputError, PathTakenError, UsageError

log = logging.getLogger(__name__)


def check_inputs(
    raw_dir: Path, pairing: Pairing, rows: int, cols: int, strict: bool, map_: Callable
) -> tuple[list[SourceCheck], dict[str, str], list[str]]:
    """Decode every paired input; raise one error listing all problems, else return the checks
    of the images to keep, the duplicates dropped (path -> kept path) and the colour originals
    (averaged to gray, with a warning each)."""
    checks: list[SourceCheck] = map_(
        partial(check_source, raw_dir, rows=rows, cols=cols), pairing.sources, "checking"
    )
    problems = pairing.problems + [problem for c in checks for problem in c.problems]
    problems += tile_size_problems(raw_dir, checks, rows, cols)
    if strict:
        problems += [
            f"{raw_dir / u['path']}: {u['reason']} (strict=true)" for u in pairing.unpaired
        ]
    if not pairing.sources and not pairing.problems:
        log_pairing(pairing, {})
        problems.append(f"{raw_dir}: no original has a label; see the unpaired files above")
    raise_problems(problems, f"{raw_dir}: cannot prepare; fix these and run again")
    colour = [c.source.original for c in checks if c.colour]
    for path in colour:
        log.warning("%s: a colour (RGB) original; averaged to gray", raw_dir / path)
    duplicates = find_duplicates({c.source.original: c.pixel_hash for c in checks})
    kept = [c for c in checks if c.source.original not in duplicates]
    return kept, duplicates, colour


def tile_size_problems(
    raw_dir: Path, checks: Sequence[SourceCheck], rows: int, cols: int
) -> list[str]:
    """One problem per image size whose tiles would be too small, naming one of its images."""
    example: dict[tuple[int, int], str] = {}
    for c in checks:
        if c.height and not c.problems:
            example.setdefault((c.height, c.width), c.source.original)
    problems = []
    for (height, width), original in sorted(example.items()):
        try:
            check_tile_size(height, width, rows, cols)
        except ValueError as error:
            count = sum((c.height, c.width) == (height, width) for c in checks)
            problems.append(f"{raw_dir / original} and {count - 1} more of that size: {error}")
    return problems


def raise_problems(problems: Sequence[str], header: str) -> None:
    """Raise one ValueError naming every problem (one line each), so all are fixed in one go."""
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise InputError(f"{header} ({len(problems)} problems):\n{lines}")


def fingerprint(checks: Iterable[SourceCheck], settings: Mapping[str, object]) -> str:
    """SHA-256 of the usable inputs' contents and the settings: equal means the same dataset."""
    content = [
        [c.source.image_id, c.source.original, c.pixel_hash, *c.label_hashes] for c in checks
    ]
    text = json.dumps({"inputs": content, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def input_folders(raw_dir: Path, pairing: Pairing) -> list[Path]:
    """Real paths of raw_dir, its trees and every folder an input file really lies in (sorted)."""
    folders = {raw_dir.resolve()}
    folders |= {(raw_dir / tree).resolve() for tree in (ORIGINALS, LABELS, LABELS_AXONS)}
    files = [path for s in pairing.sources for path in (s.original, s.label, s.label_axons)]
    files += [item["path"] for item in pairing.unpaired] + pairing.ignored
    # realpath, not Path.resolve: a file that is a link loop is listed, not raised on.
    folders |= {Path(os.path.realpath(raw_dir / p)).parent for p in files if p is not None}
    return sorted(folders)


def check_not_input(out_dir: Path, raw_dir: Path, folders: Iterable[Path]) -> None:
    """Refuse an out_dir that is, holds or lies in an input folder (symlinks resolved).

    The finished tree replaces out_dir as a whole, so any overlap with the inputs could
    delete raw data, whatever the flags.
    """
    target = out_dir.resolve()
    folders = list(folders)
    relations = {  # the closest relation is named: "is originals/" before "lies inside raw/"
        "is": [folder for folder in folders if target == folder],
        "holds": [folder for folder in folders if target in folder.parents],
        "lies inside": [folder for folder in folders if folder in target.parents],
    }
    for relation, hits in relations.items():
        if hits:  # name the outermost folder held, the innermost one lain in
            folder = min(hits, key=lambda f: len(f.parts)) if relation == "holds" else hits[-1]
            raise UsageError(
                f"out_dir={out_dir} {relation} the input folder {folder}; prepare never writes "
                f"over or into its inputs: choose an out_dir outside raw_dir {raw_dir}"
            )


def prepared_fingerprint(out_dir: Path) -> str | None:
    """The fingerprint in the report.json of a dataset prepare wrote, or None for anything else.

    report.json with a fingerprint next to manifest.csv is the dataset's own marker: only a
    folder carrying it may ever be replaced.
    """
    try:
        report = json.loads((out_dir / "report.json").read_text())
    except (OSError, ValueError):
        return None
    digest = report.get("fingerprint") if isinstance(report, dict) else None
    has_manifest = (out_dir / "manifest.csv").is_file()
    return digest if isinstance(digest, str) and has_manifest else None


def check_out_dir(out_dir: Path, digest: str, overwrite: bool) -> None:
    """Allow a new or empty out_dir, this same dataset, or another prepared one with overwrite.

    Anything else is refused whatever the flag: overwrite only ever replaces a prepared dataset.
    """
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir():
        raise PathTakenError(f"{out_dir}: not a folder; choose another out_dir")
    if not any(out_dir.iterdir()):
        return
    previous = prepared_fingerprint(out_dir)
    if previous is None:
        raise PathTakenError(
            f"{out_dir}: holds files that neuroseg.prepare did not write (no report.json "
            "fingerprint), so it is never replaced, not even with overwrite=true; choose "
            "another out_dir"
        )
    if previous != digest and not overwrite:
        raise PathTakenError(
            f"{out_dir}: holds another prepared dataset than this run would write; pass "
            "overwrite=true to replace it, or choose another out_dir"
        )
