"""Raw lab tree -> prepared dataset: check all inputs, drop duplicates, split whole images, tile.

The order matters: every input is read and checked before anything is written, duplicates are
removed before the split (a copy in test of a training image would leak), and the split is made
on whole images before cutting tiles. The output is built in a temp sibling and renamed at the end.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from multiprocessing import get_context
from pathlib import Path

from neuroseg import io, locks
from neuroseg.data.labels import check_palette, class_mask, neuron_mask
from neuroseg.data.manifest import MANIFEST_COLUMNS, ManifestRow, pixel_counts
from neuroseg.data.pairing import (
    LABELS,
    LABELS_AXONS,
    ORIGINALS,
    Pairing,
    Source,
    SourceCheck,
    check_source,
    find_duplicates,
    log_pairing,
    pair_sources,
    read_original,
)
from neuroseg.data.split import (
    check_fractions,
    extend_split,
    grouped_split,
    load_split,
    natural_key,
)
from neuroseg.data.tiling import check_tile_size, cut, tile_grid
from neuroseg.errors import InputError, PathTakenError, UsageError
from neuroseg.runtime import progress_bar

log = logging.getLogger(__name__)

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def worker_pool(workers: int, progress: bool = False) -> Iterator[Callable[..., list]]:
    """Yield a `map(function, items, desc) -> list` run in `workers` processes (1: in this
    process), drawing a bar named `desc` as the items finish when `progress`.

    One pool serves both passes, so workers start once. They are spawned, not forked (the caller
    may hold threads, e.g. torch's, that a fork copies in a locked state), with one BLAS thread
    each: the images are the parallel unit, and BLAS threads competing for the same cores made
    the colour conversion's matrix products 30x slower when measured on 2 busy cores.
    """
    if workers <= 1:
        yield lambda function, items, desc="": [
            function(item) for item in progress_bar(items, desc, "image", enabled=progress)
        ]
        return
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))  # read by spawned workers only
    try:
        with ProcessPoolExecutor(
            workers,
            mp_context=get_context("spawn"),
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            yield partial(pool_map, pool, progress=progress)
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


PR_SET_PDEATHSIG = 1  # prctl(2) option: a signal the kernel sends when the parent dies


def exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when `parent` dies, even by kill -9 (no cleanup runs).

    Otherwise a killed prepare leaves its workers blocked on the task queue, and they keep the
    resource tracker alive, for good. Linux: the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG;
    it fires when the parent's creating thread ends, and the pool lives inside one call of the
    main thread). Elsewhere a daemon thread polls the parent's PID.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    else:
        threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # died before the line above took effect
        os._exit(1)


def watch_parent(parent: int, every_s: float = 1.0) -> None:
    """Exit this process once it has another parent than `parent` (it was orphaned)."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(1)


def pool_map(
    pool: ProcessPoolExecutor,
    function: Callable,
    items: Sequence,
    desc: str = "",
    progress: bool = False,
) -> list:
    """`[function(item) for item in items]` on `pool`; on a failure, wait for the running items.

    Without the wait, workers could still write into the temp build folder after it was
    removed, leaving a half-built folder behind.
    """
    futures = [pool.submit(function, item) for item in items]
    try:
        done = progress_bar(futures, desc, "image", enabled=progress)  # in order, as they finish
        return [future.result() for future in done]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise


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


def write_source(
    source_split: tuple[Source, str],
    raw_dir: Path,
    build_dir: Path,
    palette: Mapping[str, object],
    rows: int,
    cols: int,
) -> tuple[list[dict[str, object]], list[str]]:
    """Write one image's tiles and masks under `build_dir/<split>/`; return its manifest rows
    and its labels that have no painted pixel (all background: worth a look)."""
    source, split = source_split
    image = read_original(raw_dir / source.original)
    masks = {"masks": neuron_mask(io.read_rgb(raw_dir / source.label), palette)}
    if source.label_axons is not None:
        masks["masks_axons"] = class_mask(io.read_rgb(raw_dir / source.label_axons), palette)
    labels = {"masks": source.label, "masks_axons": source.label_axons}
    empty = [str(labels[folder]) for folder, mask in masks.items() if not mask.any()]
    # Pixel counts come from the richest class map: with axons it partitions every tile.
    counted = masks.get("masks_axons", masks["masks"])
    height, width = image.shape
    manifest = []
    for tile in tile_grid(height, width, rows, cols):
        name = f"{source.image_id}_r{tile.row}c{tile.col}"
        io.write_tiff(build_dir / split / "images" / f"{name}.tif", cut(image, tile))
        for folder, mask in masks.items():
            io.write_png(build_dir / split / folder / f"{name}.png", cut(mask, tile))
        row = ManifestRow(
            tile=name,
            split=split,
            condition=source.condition,
            source=source.original,
            image_id=source.image_id,
            **asdict(tile),
            source_height=height,
            source_width=width,
            **pixel_counts(cut(counted, tile), "masks_axons" in masks),
        )
        manifest.append(row.csv_row())
    return manifest, empty


def count_splits(manifest: Sequence[Mapping[str, object]], splits: Sequence[str]) -> dict:
    """Images and tiles per split and condition, with totals, for report.json and the console."""
    counts: dict[str, dict] = {}
    for unit, key in (("images", "image_id"), ("tiles", "tile")):
        counts[unit] = {}
        for split in splits:
            seen = {(str(row["condition"]), row[key]) for row in manifest if row["split"] == split}
            per_condition = Counter(condition for condition, _ in seen)
            counts[unit][split] = {"total": len(seen), **dict(sorted(per_condition.items()))}
    return counts


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


def choose_split(
    out_dir: Path, kept: Sequence[Source], fractions: Mapping[str, float], seed: int
) -> tuple[dict[str, list[str]], str]:
    """The seeded split, or an earlier splits.json's (same settings) extended to new images;
    and which, with the images added to or gone from the earlier split."""
    ids = [source.image_id for source in kept]
    groups = [source.condition for source in kept]
    seeded = grouped_split(ids, groups, fractions, seed)
    previous = load_split(out_dir, fractions, seed)
    if previous is None:
        return seeded, "seeded"
    split = extend_split(previous, ids, groups, fractions, seed)
    # Name the source only when it changes the result, so reruns stay byte-identical.
    if split == seeded:
        return split, "seeded"
    listed = {i for members in previous.values() for i in members}
    added, gone = len(set(ids) - listed), len(listed - set(ids))
    changes = [f"{added} new images split by seed"] * bool(added)
    changes += [f"{gone} no longer present"] * bool(gone)
    return split, "; ".join(["kept from an earlier splits.json", *changes])


def write_tiles(
    build_dir: Path,
    split: Mapping[str, Sequence[str]],
    kept: Sequence[Source],
    map_: Callable,
    **write_kwargs: object,
) -> tuple[list[dict[str, object]], list[str]]:
    """Write every kept image's tiles into its split's folders; return the manifest rows in a
    fixed order and the labels with no painted pixel."""
    split_of = {image_id: name for name, members in split.items() for image_id in members}
    has_axons = any(source.label_axons is not None for source in kept)
    for name in split:  # every split folder exists, even an empty one
        for folder in ("images", "masks", "masks_axons")[: 3 if has_axons else 2]:
            (build_dir / name / folder).mkdir(parents=True)
    write = partial(write_source, build_dir=build_dir, **write_kwargs)
    jobs = [(source, split_of[source.image_id]) for source in kept]
    written = map_(write, jobs, "writing tiles")
    manifest = [row for rows, _ in written for row in rows]
    empty = sorted((label for _, labels in written for label in labels), key=natural_key)
    for label in empty:
        log.warning(
            "label with no painted pixel: %s (all background); check its colours against the "
            "palette",
            label,
        )
    order = {name: index for index, name in enumerate(split)}
    manifest.sort(key=lambda row: (order[row["split"]], natural_key(str(row["tile"]))))
    return manifest, empty


def prepare_dataset(
    raw_dir: Path,
    out_dir: Path,
    fractions: Mapping[str, float],
    seed: int,
    rows: int,
    cols: int,
    palette: Mapping[str, object],
    overwrite: bool = False,
    strict: bool = False,
    workers: int = 1,
    prefer_label: str = "png",
    progress: bool = False,
) -> dict:
    """Prepare `raw_dir` into `out_dir` (the Prepared dataset contract); returns the report.

    Re-running with the same inputs and settings rewrites byte-identical files; another prepared
    dataset is only replaced with overwrite=True, and anything else (raw data above all) never.
    The run holds locks.dir_lock(out_dir) throughout: a second run into it refuses at once. An
    earlier splits.json with the same settings is kept, so a reviewed or hand-edited split
    survives reruns, and images added since never move a placed one (split.extend_split).
    `prefer_label` picks between a JPEG and a PNG label of one image (see pairing.pair_sources).
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    check_fractions(fractions)
    check_palette(palette)
    settings = {"fractions": dict(fractions), "seed": seed, "tiles": {"rows": rows, "cols": cols}}
    # a listing only: cheap, so a second run refuses at once
    pairing = pair_sources(raw_dir, prefer_label)
    check_not_input(out_dir, raw_dir, input_folders(raw_dir, pairing))
    # A symlinked out_dir is written where it points (replacing the link would orphan the data).
    target = out_dir.resolve() if out_dir.is_symlink() else out_dir
    with locks.dir_lock(target), worker_pool(workers, progress) as map_:
        checks, duplicates, colour = check_inputs(raw_dir, pairing, rows, cols, strict, map_)
        digest = fingerprint(checks, {**settings, "palette": palette})
        check_out_dir(target, digest, overwrite)
        log_pairing(pairing, duplicates)
        kept = [c.source for c in checks]
        split, split_source = choose_split(target, kept, fractions, seed)
        with io.atomic_dir(target) as build_dir:
            manifest, empty = write_tiles(
                build_dir, split, kept, map_, raw_dir=raw_dir, palette=palette, rows=rows, cols=cols
            )
            report = {
                "raw_dir": str(raw_dir),
                "fingerprint": digest,
                "settings": settings,
                "axons": any(source.label_axons is not None for source in kept),
                "split": split_source,
                "counts": count_splits(manifest, list(split)),
                "duplicates": [
                    {"path": path, "duplicate_of": kept_path, "reason": "same pixels"}
                    for path, kept_path in duplicates.items()
                ],
                "unpaired": pairing.unpaired,
                "labels_chosen": {"prefer_label": prefer_label, "chosen": pairing.chosen},
                "ignored": pairing.ignored,
                "repeated_folders": pairing.repeated,
                "empty_labels": empty,
                "colour_originals": colour,
            }
            io.write_csv(build_dir / "manifest.csv", manifest, MANIFEST_COLUMNS)
            splits_json = {"seed": seed, "fractions": dict(fractions), **split}
            io.write_json(build_dir / "splits.json", splits_json)
            io.write_json(build_dir / "report.json", report)
    log_summary(out_dir, report)
    return report


def log_summary(out_dir: Path, report: Mapping) -> None:
    """A small console table: images and tiles per split, and what was left out."""
    log.info("%s: %s split", out_dir, report["split"])
    log.info("%-6s %7s %6s", "split", "images", "tiles")
    for split, by_condition in report["counts"]["images"].items():
        tiles = report["counts"]["tiles"][split]["total"]
        log.info("%-6s %7d %6d", split, by_condition["total"], tiles)
    log.info(
        "left out: %d duplicates, %d unpaired, %d ignored; %d labels with no paint, %d colour "
        "originals (listed in report.json)",
        len(report["duplicates"]),
        len(report["unpaired"]),
        len(report["ignored"]),
        len(report["empty_labels"]),
        len(report["colour_originals"]),
    )
