"""How work runs on this machine: compute threads, numeric precision, progress bars.

Threads: as many as the cores this process may really use (affinity, cgroup CPU quota), no more.
Precision: what a run can really use on this CPU or GPU, with one warning per fallback.
Progress bars: tqdm, already installed with Lightning, estimates the remaining time from a
smoothed rate, fits the terminal's width and nests an inner bar (predict's windows) under an
outer one (images); they draw only on a terminal.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

from neuroseg.errors import UsageError

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_V1_QUOTA = CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us"
CGROUP_V1_PERIOD = CGROUP_ROOT / "cpu" / "cpu.cfs_period_us"


def parse_quota(quota: str, period: str) -> int | None:
    """Cores a CFS quota allows, rounded up; None when unlimited ("max" or a negative quota)."""
    if quota.strip() == "max" or int(quota) < 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def cgroup_v2_dirs(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> list[Path]:
    """This process's cgroup v2 folder and every parent up to the root: a quota on any of them
    (systemd CPUQuota, a container's limit) caps the process."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return [root]
    relative = next((line[3:] for line in lines if line.startswith("0::")), "/")
    folder = root / relative.strip().lstrip("/")
    return [folder, *(parent for parent in folder.parents if parent.is_relative_to(root))]


def cpu_quota_cores(
    v2_dirs: list[Path] | None = None,
    v1: tuple[Path, Path] = (CGROUP_V1_QUOTA, CGROUP_V1_PERIOD),
) -> int | None:
    """Cores the tightest CPU quota over this process allows (cgroup v2, else v1); None if none."""
    limits = []
    try:
        for folder in cgroup_v2_dirs() if v2_dirs is None else v2_dirs:
            if (folder / "cpu.max").is_file():
                quota, _, period = (folder / "cpu.max").read_text().strip().partition(" ")
                limits.append(parse_quota(quota, period))
        if not limits and v1[0].is_file() and v1[1].is_file():
            limits.append(parse_quota(v1[0].read_text(), v1[1].read_text()))
    except (OSError, ValueError):
        log.debug("unreadable cgroup CPU quota; assuming none", exc_info=True)
        return None
    return min((limit for limit in limits if limit is not None), default=None)


def set_threads(threads: int | None = None) -> int:
    """Set and return torch's intra-op thread count: `threads`, or torch's choice capped by quota.

    torch picks one thread per physical core it may be scheduled on, and honours
    OMP_NUM_THREADS; it does not see a container's CPU quota (docker --cpus, Kubernetes
    limits), where 32 threads on 4 allowed cores spend their time waiting for one another at
    every OpenMP barrier. A step then runs several times slower than with 4 threads.
    """
    if threads is not None:
        if int(threads) < 1:
            raise UsageError(f"threads={threads}: pass a positive count, or null for automatic")
        wanted = int(threads)
    else:
        quota = cpu_quota_cores()
        wanted = min(torch.get_num_threads(), quota or torch.get_num_threads())
    if wanted != torch.get_num_threads():
        log.info(f"compute threads: {torch.get_num_threads()} -> {wanted}")
        torch.set_num_threads(wanted)
    return wanted


# Warnings already given in this process: a sweep resolves precision once per job, tests per run.
_warned: set[str] = set()


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX512-BF16 or AMX); elsewhere it is emulated."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # a torch build without the oneDNN query
        return False


def cuda_has_bf16() -> bool:
    """True when the current GPU runs bf16 natively (Ampere and later); a T4 or V100 emulates it."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def resolve_precision(accelerator: str, precision: str | int, stage: str = "train") -> str | int:
    """`precision`, or what replaces bf16 where the device only emulates it, with one warning
    in the words of `stage` (train, predict, evaluate, ...), the run that asked.

    On a CPU without native bf16, "32-true" (emulated bf16 is several times slower than fp32, so
    the fast CPU default must not become the slow path on a laptop). On a GPU without native bf16,
    "bf16-mixed" becomes "16-mixed" (fp16 autocast with loss scaling, native on every CUDA GPU)
    and any other bf16 ("bf16-true", predict's "bf16") becomes "32-true": pure fp16 weights or
    unscaled fp16 inference could overflow where bf16 would not.
    """
    if "bf16" not in str(precision):
        return precision
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if on_gpu:
        if cuda_has_bf16():
            return precision
        fallback = "16-mixed" if str(precision) == "bf16-mixed" else "32-true"
    elif accelerator in ("cpu", "auto") and not cpu_has_bf16():
        fallback = "32-true"
    else:
        return precision
    running = "float32" if fallback == "32-true" else "fp16 mixed precision (16-mixed)"
    device = "GPU" if on_gpu else "CPU"
    _warn_once(
        f"{stage}: precision={precision} asked, but this {device} has no native bf16; "
        f"running in {running}"
    )
    return fallback


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
