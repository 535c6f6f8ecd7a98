"""Compute threads: as many as the cores this process may really use, and no more."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def parse_quota(quota: str, period: str) -> int | None:
    """Cores a CFS quota allows, rounded up; None when unlimited ("max" or a negative quota)."""
    if quota.strip() == "max" or int(quota) < 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def cpu_quota_cores(
    v2: Path = CGROUP_V2_MAX, v1: tuple[Path, Path] = (CGROUP_V1_QUOTA, CGROUP_V1_PERIOD)
) -> int | None:
    """Cores the container's CPU quota (cgroup v2 or v1) allows; None when there is none."""
    try:
        if v2.is_file():
            quota, _, period = v2.read_text().strip().partition(" ")
            return parse_quota(quota, period)
        if v1[0].is_file() and v1[1].is_file():
            return parse_quota(v1[0].read_text(), v1[1].read_text())
    except (OSError, ValueError):
        log.debug("unreadable cgroup CPU quota; assuming none", exc_info=True)
    return None


def set_threads(threads: int | None = None) -> int:
    """Set and return torch's intra-op thread count: `threads`, or torch's choice capped by quota.

    torch picks one thread per physical core it may be scheduled on, and honours
    OMP_NUM_THREADS; it does not see a container's CPU quota (docker --cpus, Kubernetes
    limits), where 32 threads on 4 allowed cores spend their time waiting for one another at
    every OpenMP barrier. A step then runs several times slower than with 4 threads.
    """
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads={threads}: pass a positive count, or null for automatic")
        wanted = int(threads)
    else:
        quota = cpu_quota_cores()
        wanted = min(torch.get_num_threads(), quota or torch.get_num_threads())
    if wanted != torch.get_num_threads():
        log.info(f"compute threads: {torch.get_num_threads()} -> {wanted}")
        torch.set_num_threads(wanted)
    return wanted
