"""Raw lab tree -> prepared dataset: check all inputs, drop duplicates, split whole images, tile.

The order matters: every input is read and checked before anything is written, duplicates are
removed before the split (a copy in test of a training image would leak), and the split is made
on whole images before cutting tiles. The output is built in a temp sibling and renamed at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from multiprocessing import get_context
from pathlib import Path

from neuroseg import io
from neuroseg.data.labels import check_palette, class_mask, neuron_mask
from neuroseg.data.manifest import MANIFEST_COLUMNS, ManifestRow, pixel_counts
from neuroseg.data.pairing import (
    Pairing,
    Source,
    SourceCheck,
    check_source,
    find_duplicates,
    log_pairing,
    pair_sources,
    read_original,
)
from neuroseg.data.split import check_fractions, grouped_split, load_split, natural_key
from neuroseg.data.tiling import cut, tile_grid

log = logging.getLogger(__name__)

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def worker_pool(workers: int) -> Iterator[Callable[[Callable, Sequence], list]]:
    """Yield a `map(function, items) -> list` run in `workers` processes (1: in this process).

    One pool serves both passes, so workers start once. They are spawned, not forked (the caller
    may hold threads, e.g. torch's, that a fork copies in a locked state), with one BLAS thread
    each: the images are the parallel unit, and BLAS threads competing for the same cores made
    the colour conversion's matrix products 30x slower when measured on 2 busy cores.
    """
    if workers <= 1:
        yield lambda function, items: [function(item) for item in items]
        return
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))  # read by spawned workers only
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            yield partial(pool_map, pool)
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def pool_map(pool: ProcessPoolExecutor, function: Callable, items: Sequence) -> list:
    """`[function(item) for item in items]` on `pool`; on a failure, wait for the running items.

    Without the wait, workers could still write into the temp build folder after it was
    removed, leaving a half-built folder behind.
    """
    futures = [pool.submit(function, item) for item in items]
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise


def raise_problems(problems: Sequence[str], header: str) -> None:
    """Raise one ValueError naming every problem (one line each), so all are fixed in one go."""
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        lines = "\n".join(f"  {problem}" for problem in problems)
        raise ValueError(f"{header} ({len(problems)} problems):\n{lines}")


def fingerprint(checks: Iterable[SourceCheck], settings: Mapping[str, object]) -> str:
    """SHA-256 of the usable inputs' contents and the settings: equal means the same dataset."""
    content = [
        [c.source.image_id, c.source.original, c.pixel_hash, *c.label_hashes] for c in checks
    ]
    text = json.dumps({"inputs": content, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def check_out_dir(out_dir: Path, raw_dir: Path, digest: str, overwrite: bool) -> None:
    """Refuse to replace a folder holding anything but this same dataset, unless overwrite."""
    if out_dir.resolve() == raw_dir.resolve() or out_dir.resolve() in raw_dir.resolve().parents:
        raise ValueError(f"{out_dir}: out_dir would replace raw_dir {raw_dir}; choose another")
    if overwrite or not out_dir.exists() or (out_dir.is_dir() and not any(out_dir.iterdir())):
        return
    report_path = out_dir / "report.json"
    try:
        previous = json.loads(report_path.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        previous = None
    if previous != digest:
        raise FileExistsError(
            f"{out_dir}: holds other data than this run would write; pass overwrite=true to "
            "replace it, or choose another out_dir"
        )


def write_source(
    source_split: tuple[Source, str],
    raw_dir: Path,
    build_dir: Path,
    palette: Mapping[str, object],
    rows: int,
    cols: int,
) -> list[dict[str, object]]:
    """Write one image's tiles and masks under `build_dir/<split>/`; return its manifest rows."""
    source, split = source_split
    image = read_original(raw_dir / source.original)
    masks = {"masks": neuron_mask(io.read_rgb(raw_dir / source.label), palette)}
    if source.label_axons is not None:
        masks["masks_axons"] = class_mask(io.read_rgb(raw_dir / source.label_axons), palette)
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
    return manifest


def summarize(manifest: Sequence[Mapping[str, object]], splits: Sequence[str]) -> dict:
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
    raw_dir: Path, rows: int, cols: int, strict: bool, map_: Callable
) -> tuple[Pairing, list[SourceCheck], dict[str, str]]:
    """Pair and decode every input; raise one error listing all problems, else return the
    pairing, the checks of the images to keep, and the duplicates dropped (path -> kept path)."""
    pairing = pair_sources(raw_dir)
    checks: list[SourceCheck] = map_(
        partial(check_source, raw_dir, rows=rows, cols=cols), pairing.sources
    )
    problems = pairing.problems + [problem for c in checks for problem in c.problems]
    if strict:
        problems += [
            f"{raw_dir / u['path']}: {u['reason']} (strict=true)" for u in pairing.unpaired
        ]
    if not pairing.sources and not pairing.problems:
        log_pairing(pairing, {})
        problems.append(f"{raw_dir}: no original has a label; see the unpaired files above")
    raise_problems(problems, f"{raw_dir}: cannot prepare; fix these and run again")
    duplicates = find_duplicates({c.source.original: c.pixel_hash for c in checks})
    return pairing, [c for c in checks if c.source.original not in duplicates], duplicates


def choose_split(
    out_dir: Path, kept: Sequence[Source], fractions: Mapping[str, float], seed: int
) -> tuple[dict[str, list[str]], str]:
    """The seeded split, or an earlier splits.json for the same images and settings; and which."""
    ids = [source.image_id for source in kept]
    seeded = grouped_split(ids, [source.condition for source in kept], fractions, seed)
    split = load_split(out_dir, ids, fractions, seed) or seeded
    # Name the source only when it changes the result, so reruns stay byte-identical.
    return split, "seeded" if split == seeded else "kept from an earlier splits.json"


def write_tiles(
    build_dir: Path,
    split: Mapping[str, Sequence[str]],
    kept: Sequence[Source],
    map_: Callable,
    **write_kwargs: object,
) -> list[dict[str, object]]:
    """Write every kept image's tiles into its split's folders; manifest rows in a fixed order."""
    split_of = {image_id: name for name, members in split.items() for image_id in members}
    has_axons = any(source.label_axons is not None for source in kept)
    for name in split:  # every split folder exists, even an empty one
        for folder in ("images", "masks", "masks_axons")[: 3 if has_axons else 2]:
            (build_dir / name / folder).mkdir(parents=True)
    write = partial(write_source, build_dir=build_dir, **write_kwargs)
    jobs = [(source, split_of[source.image_id]) for source in kept]
    manifest = [row for rows in map_(write, jobs) for row in rows]
    order = {name: index for index, name in enumerate(split)}
    return sorted(manifest, key=lambda row: (order[row["split"]], natural_key(str(row["tile"]))))


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
) -> dict:
    """Prepare `raw_dir` into `out_dir` (the Prepared dataset contract); returns the report.

    Re-running with the same inputs and settings rewrites byte-identical files; an out_dir holding
    anything else is only replaced with overwrite=True. An earlier splits.json for the same images
    and settings is kept, so a reviewed or hand-edited split survives reruns.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    check_fractions(fractions)
    check_palette(palette)
    settings = {"fractions": dict(fractions), "seed": seed, "tiles": {"rows": rows, "cols": cols}}
    with worker_pool(workers) as map_:
        pairing, checks, duplicates = check_inputs(raw_dir, rows, cols, strict, map_)
        digest = fingerprint(checks, {**settings, "palette": palette})
        check_out_dir(out_dir, raw_dir, digest, overwrite)
        log_pairing(pairing, duplicates)
        kept = [c.source for c in checks]
        split, split_source = choose_split(out_dir, kept, fractions, seed)
        with io.atomic_dir(out_dir) as build_dir:
            manifest = write_tiles(
                build_dir, split, kept, map_, raw_dir=raw_dir, palette=palette, rows=rows, cols=cols
            )
            report = {
                "raw_dir": str(raw_dir),
                "fingerprint": digest,
                "settings": settings,
                "axons": any(source.label_axons is not None for source in kept),
                "split": split_source,
                "counts": summarize(manifest, list(split)),
                "duplicates": [
                    {"path": path, "duplicate_of": kept_path, "reason": "same pixels"}
                    for path, kept_path in duplicates.items()
                ],
                "unpaired": pairing.unpaired,
                "ignored": pairing.ignored,
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
        "left out: %d duplicates, %d unpaired, %d ignored (listed in report.json)",
        len(report["duplicates"]),
        len(report["unpaired"]),
        len(report["ignored"]),
    )
