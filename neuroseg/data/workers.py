"""The worker processes prepare reads and writes images in: spawned, one BLAS thread each,
ended with their parent, and never left writing after a failure."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from contextlib import contextmanager
from functools import partial
from multiprocessing import get_context

from neuroseg.runtime import progress_bar

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
