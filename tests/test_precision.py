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


def test_each_stage_warns_once_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="neuroseg.runtime"):
        for _ in range(2):
            assert runtime.resolve_precision("cpu", "bf16-mixed") == "32-true"
            assert runtime.resolve_precision("cpu", "bf16", stage="predict") == "32-true"
    assert caplog.messages == [
        "train: precision=bf16-mixed asked, but this CPU has no native bf16; running in float32",
        "predict: precision=bf16 asked, but this CPU has no native bf16; running in float32",
    ]
