"""Compute threads: as many as the cores this process may really use, and no more."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

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
