"""Compute threads follow the cores a process may use, a container's CPU quota included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from neuroseg import runtime


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("quota", "period", "cores"),
    [("max", "100000", None), ("-1", "100000", None), ("200000", "100000", 2),
     ("150000", "100000", 2), ("50000", "100000", 1)],
)  # fmt: skip
def test_parse_quota(quota: str, period: str, cores: int | None) -> None:
    assert runtime.parse_quota(quota, period) == cores


def test_quota_files_v2_chain_then_v1(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    job = root / "system.slice" / "job.scope"
    job.mkdir(parents=True)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/system.slice/job.scope\n")
    assert runtime.cgroup_v2_dirs(proc, root) == [job, job.parent, root]
    quota, period = tmp_path / "quota", tmp_path / "period"
    quota.write_text("300000\n")
    period.write_text("100000\n")
    v2 = [job, job.parent, root]
    assert runtime.cpu_quota_cores(v2, (quota, period)) == 3  # no cpu.max anywhere: v1 is read
    (root / "cpu.max").write_text("max 100000\n")
    assert runtime.cpu_quota_cores(v2, (quota, period)) is None  # v2 without a limit
    (job.parent / "cpu.max").write_text("200000 100000\n")
    (job / "cpu.max").write_text("400000 100000\n")
    assert runtime.cpu_quota_cores(v2, (quota, period)) == 2  # the tightest on the way up
    (job / "cpu.max").write_text("garbled\n")
    assert runtime.cpu_quota_cores(v2, (quota, period)) is None
    assert runtime.cgroup_v2_dirs(tmp_path / "no_proc", root) == [root]


def test_quota_caps_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setattr(runtime, "cpu_quota_cores", lambda: 1)
    assert runtime.set_threads(None) == 1 == torch.get_num_threads()
    monkeypatch.setattr(runtime, "cpu_quota_cores", lambda: 8)  # never raised above torch's own
    torch.set_num_threads(2)
    assert runtime.set_threads(None) == 2 == torch.get_num_threads()


def test_explicit_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_quota_cores", lambda: 1)
    assert runtime.set_threads(3) == 3 == torch.get_num_threads()
    with pytest.raises(ValueError, match="threads=0: pass a positive count"):
        runtime.set_threads(0)
