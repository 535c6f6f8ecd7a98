"""Raw lab tree -> prepared dataset: check all inputs, drop duplicates, split whole images, tile.

The order matters: every input is read and checked before anything is written, duplicates are
removed before the split (a copy in test of a training image would leak), and the split is made
on whole images before cutting tiles. The output is built in a temp sibling and renamed at the end.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

from neuroseg import io, locks
from neuroseg.data.checks import (
    check_inputs,
    check_not_input,
    check_out_dir,
    fingerprint,
    input_folders,
)
from neuroseg.data.labels import check_palette, class_mask, neuron_mask
from neuroseg.data.manifest import MANIFEST_COLUMNS, ManifestRow, pixel_counts
from neuroseg.data.pairing import Pairing, Source, log_pairing, pair_sources, read_original
from neuroseg.data.split import (
    check_fractions,
    extend_split,
    grouped_split,
    load_split,
    natural_key,
)
from neuroseg.data.tiling import cut, tile_grid
from neuroseg.data.workers import worker_pool

log = logging.getLogger(__name__)


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
                **left_out(pairing, duplicates, prefer_label, empty, colour),
            }
            io.write_csv(build_dir / "manifest.csv", manifest, MANIFEST_COLUMNS)
            splits_json = {"seed": seed, "fractions": dict(fractions), **split}
            io.write_json(build_dir / "splits.json", splits_json)
            io.write_json(build_dir / "report.json", report)
    log_summary(out_dir, report)
    return report


def left_out(
    pairing: Pairing,
    duplicates: Mapping[str, str],
    prefer_label: str,
    empty: Sequence[str],
    colour: Sequence[str],
) -> dict[str, object]:
    """report.json's account of every input not tiled as is: duplicates, unpaired and ignored
    files, the label chosen of two, empty labels and colour originals (none is lost silently)."""
    return {
        "duplicates": [
            {"path": path, "duplicate_of": kept_path, "reason": "same pixels"}
            for path, kept_path in duplicates.items()
        ],
        "unpaired": pairing.unpaired,
        "labels_chosen": {"prefer_label": prefer_label, "chosen": pairing.chosen},
        "ignored": pairing.ignored,
        "repeated_folders": pairing.repeated,
        "empty_labels": list(empty),
        "colour_originals": list(colour),
    }


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
