"""Compute threads follow the cores a process may use, a container's CPU quota included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from neuroseg import threads


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
    assert threads.parse_quota(quota, period) == cores


def test_quota_files_v2_then_v1(tmp_path: Path) -> None:
    v2, quota, period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    quota.write_text("300000\n")
    period.write_text("100000\n")
    assert threads.cpu_quota_cores(v2, (quota, period)) == 3  # no v2 file: v1 is read
    v2.write_text("100000 100000\n")
    assert threads.cpu_quota_cores(v2, (quota, period)) == 1
    v2.write_text("garbled\n")
    assert threads.cpu_quota_cores(v2, (quota, period)) is None
    assert threads.cpu_quota_cores(tmp_path / "none", (tmp_path / "a", tmp_path / "b")) is None


def test_quota_caps_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "cpu_quota_cores", lambda: 1)
    assert threads.set_threads(None) == 1 == torch.get_num_threads()
    monkeypatch.setattr(threads, "cpu_quota_cores", lambda: 8)  # never raised above torch's own
    torch.set_num_threads(2)
    assert threads.set_threads(None) == 2 == torch.get_num_threads()


def test_explicit_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "cpu_quota_cores", lambda: 1)
    assert threads.set_threads(3) == 3 == torch.get_num_threads()
    with pytest.raises(ValueError, match="threads=0: pass a positive count"):
        threads.set_threads(0)
