"""Seeded split of whole source images, stratified by condition, exact largest-remainder counts.

Tiles are never split: every tile of an image follows its image, so test scores cannot leak from
training tiles of the same picture (the original pipeline split tiles after cutting them).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from neuroseg.errors import UsageError

log = logging.getLogger(__name__)


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key ordering digit runs by value ("200_2_10" after "200_2_9"), for stable listings."""
    parts = re.split(r"(\d+)", text)
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts)


def check_fractions(fractions: Mapping[str, float]) -> None:
    """Raise ValueError unless the split fractions are non-negative numbers that sum to 1."""
    if not fractions:
        raise UsageError("no split fractions given; set split.train, split.val and split.test")
    # A config typo such as split.train=abc arrives as text; name the key rather than fail in `<`.
    not_numbers = [
        f"split.{name}={value!r}"
        for name, value in fractions.items()
        if isinstance(value, bool) or not isinstance(value, int | float)
    ]
    if not_numbers:
        raise UsageError(f"{', '.join(not_numbers)}: not a number; give fractions such as 0.7")
    negative = {name: value for name, value in fractions.items() if value < 0}
    if negative:
        raise UsageError(f"negative split fractions {negative}; use values in [0, 1]")
    total = sum(fractions.values())
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise UsageError(
            f"split fractions {dict(fractions)} sum to {total:g}; make split.train + split.val "
            "+ split.test = 1"
        )


def largest_remainder(total: int, fractions: Sequence[float]) -> list[int]:
    """Integer counts proportional to `fractions` that sum to `total` (Hamilton's method).

    Floors first, then one extra each to the largest remainders (ties: earlier entry first). With at
    least one item per positive fraction, no positive fraction ends up with zero: the count is moved
    from the largest share, so a small val set is never silently empty.
    """
    quotas = [total * fraction for fraction in fractions]
    counts = [math.floor(quota + 1e-9) for quota in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    positive = [i for i, fraction in enumerate(fractions) if fraction > 0]
    if total >= len(positive):
        for i in positive:
            if counts[i] == 0:
                counts[max(range(len(counts)), key=lambda j: (counts[j], -j))] -= 1
                counts[i] = 1
    return counts


def stratified_counts(
    group_sizes: Sequence[int], fractions: Sequence[float], rng: np.random.Generator
) -> list[list[int]]:
    """Counts[group][split] whose rows sum to the group sizes and columns to the overall counts.

    Overall counts come from `largest_remainder` over all items; each cell gets the floor of its
    quota plus at most one, the extras going to the largest remainders (ties broken by `rng`) and
    repaired by augmenting paths, so no group or split ever gains or loses an item to rounding.
    """
    targets = largest_remainder(sum(group_sizes), fractions)
    quotas = np.outer(np.asarray(group_sizes, dtype=float), np.asarray(fractions, dtype=float))
    counts = np.floor(quotas + 1e-9).astype(int)
    # A column target may sit below its floors when a zero share was lifted to one; take it back.
    for s in range(len(fractions)):
        while counts[:, s].sum() > targets[s]:
            counts[int(np.argmax(counts[:, s])), s] -= 1
    row_need = [size - int(counts[g].sum()) for g, size in enumerate(group_sizes)]
    col_need = [target - int(counts[:, s].sum()) for s, target in enumerate(targets)]
    remainders = quotas - np.floor(quotas + 1e-9)
    tie = rng.random(quotas.shape)
    cells = sorted(np.ndindex(quotas.shape), key=lambda c: (-round(remainders[c], 9), tie[c]))
    extra = np.zeros_like(counts)
    for g, s in cells:
        if row_need[g] > 0 and col_need[s] > 0:
            extra[g, s], row_need[g], col_need[s] = 1, row_need[g] - 1, col_need[s] - 1
    for g in range(len(group_sizes)):
        while row_need[g] > 0:
            _augment(g, extra, row_need, col_need)
    return (counts + extra).tolist()


def _augment(start: int, extra: np.ndarray, row_need: list[int], col_need: list[int]) -> None:
    """Give row `start` one more extra along an alternating path ending at a split with room."""
    n_rows, n_cols = extra.shape
    parent: dict[tuple[str, int], tuple[str, int] | None] = {("r", start): None}
    frontier = [("r", start)]
    while frontier:
        kind, index = frontier.pop(0)
        if kind == "r":
            steps = [("c", s) for s in range(n_cols) if extra[index, s] == 0]
        else:
            steps = [("r", g) for g in range(n_rows) if extra[g, index] == 1]
        for step in steps:
            if step in parent:
                continue
            parent[step] = (kind, index)
            if step[0] == "c" and col_need[step[1]] > 0:
                node: tuple[str, int] | None = step
                while node is not None and parent[node] is not None:
                    prev = parent[node]
                    g, s = (prev[1], node[1]) if node[0] == "c" else (node[1], prev[1])
                    extra[g, s] = 1 - extra[g, s]
                    node = prev
                row_need[start] -= 1
                col_need[step[1]] -= 1
                return
            frontier.append(step)
    raise RuntimeError("no way to place a rounding extra; fractions and sizes are inconsistent")


def grouped_split(
    ids: Sequence[str], groups: Sequence[str], fractions: Mapping[str, float], seed: int
) -> dict[str, list[str]]:
    """Split image ids into named sets (e.g. train/val/test), stratified by group (condition).

    Every id lands in exactly one set; counts follow `largest_remainder` overall and per group;
    the result depends only on the ids, groups, fractions and seed (not on input order). Lists are
    naturally sorted.
    """
    check_fractions(fractions)
    if len(ids) != len(groups):
        raise ValueError(f"{len(ids)} ids but {len(groups)} groups; give one group per id")
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if list(ids).count(i) > 1}, key=natural_key)
        raise ValueError(f"image ids {repeated} occur more than once; ids must be unique")
    names = list(fractions)
    members: dict[str, list[str]] = {}
    for image_id, group in zip(ids, groups, strict=True):
        members.setdefault(group, []).append(image_id)
    group_names = sorted(members, key=natural_key)
    rng = np.random.default_rng(seed)
    counts = stratified_counts(
        [len(members[g]) for g in group_names], [fractions[n] for n in names], rng
    )
    split: dict[str, list[str]] = {name: [] for name in names}
    for group, row in zip(group_names, counts, strict=True):
        # Shuffle a sorted list so the outcome does not depend on the order ids came in.
        shuffled = sorted(members[group], key=natural_key)
        shuffled = [shuffled[i] for i in rng.permutation(len(shuffled))]
        start = 0
        for name, count in zip(names, row, strict=True):
            split[name].extend(shuffled[start : start + count])
            start += count
    return {name: sorted(split[name], key=natural_key) for name in names}


def load_split(
    out_dir: Path, fractions: Mapping[str, float], seed: int
) -> dict[str, list[str]] | None:
    """The split in an earlier `splits.json` made with these fractions and seed, or None.

    It may list other images than this run has: `extend_split` keeps what still applies.
    """
    path = out_dir / "splits.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        split = {name: [str(i) for i in saved[name]] for name in fractions}
        same = saved["seed"] == seed and saved["fractions"] == dict(fractions)
    except (ValueError, KeyError, TypeError):
        log.warning("%s: unreadable, making a new split", path)
        return None
    listed = [image_id for ids in split.values() for image_id in ids]
    if not same or len(listed) != len(set(listed)):
        log.info("%s: made with other settings, making a new split", path)
        return None
    return split


def extend_split(
    previous: Mapping[str, Sequence[str]],
    ids: Sequence[str],
    groups: Sequence[str],
    fractions: Mapping[str, float],
    seed: int,
) -> dict[str, list[str]]:
    """`previous` for the images it already placed; the others split by `grouped_split` alone.

    An image never changes sets when others are added or removed: a test image of an earlier
    run stays a test image after corrected predictions join the raw tree, so a fine-tuned model
    is never scored on images it trained on. Images no longer present are dropped.
    """
    present = set(ids)
    split = {name: [i for i in previous.get(name, []) if i in present] for name in fractions}
    placed = {i for members in split.values() for i in members}
    new = [(i, g) for i, g in zip(ids, groups, strict=True) if i not in placed]
    if new:
        fresh = grouped_split([i for i, _ in new], [g for _, g in new], fractions, seed)
        for name in fractions:
            split[name].extend(fresh[name])
    return {name: sorted(members, key=natural_key) for name, members in split.items()}
