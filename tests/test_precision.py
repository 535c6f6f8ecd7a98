"""bf16 is only used where the CPU runs it natively."""

import logging

import pytest

from neuroseg import runtime


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: nothing warned yet, a GPU with native bf16."""
    monkeypatch.setattr(runtime, "_warned", set())
    monkeypatch.setattr(runtime, "cuda_has_bf16", lambda: True)


def test_cpu_without_bf16_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="neuroseg.runtime"):
        assert runtime.resolve_precision("cpu", "bf16-mixed") == "32-true"
    assert len(caplog.records) == 1
    assert "no native bf16" in caplog.records[0].getMessage()


def test_bf16_kept_where_supported_and_other_precisions_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert runtime.resolve_precision("cpu", "bf16-mixed") == "bf16-mixed"
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert runtime.resolve_precision("cpu", "32-true") == "32-true"
    assert runtime.resolve_precision("gpu", "bf16-mixed") == "bf16-mixed"
