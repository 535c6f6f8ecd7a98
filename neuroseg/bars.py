"""Progress bars with rate and ETA for the long commands (predict, evaluate, prepare, analyze).

tqdm, already installed with Lightning, draws them: it estimates the remaining time from a
smoothed rate, fits the terminal's width and nests an inner bar (predict's windows) under an
outer one (images), which a hand-written bar would have to redo.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

Item = TypeVar("Item")


def progress_bar(
    items: Iterable[Item],
    desc: str,
    unit: str,
    total: int | None = None,
    enabled: bool = True,
    leave: bool = True,
) -> Iterable[Item]:
    """`items`, drawing a bar on stderr as they are consumed; silent when `enabled` is false
    (`progress=false`) or stderr is not a terminal (a log file, a pipe, a cluster job)."""
    shown = enabled and sys.stderr.isatty()
    return tqdm(
        items,
        desc=desc,
        unit=unit,
        total=total,
        disable=not shown,
        leave=leave,
        file=sys.stderr,
        dynamic_ncols=True,
    )
