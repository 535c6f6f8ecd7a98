"""Inference settings from a predict/evaluate config."""

import logging

import pytest
from omegaconf import OmegaConf

from neuroseg import runtime
from neuroseg.inference.predictor import inference_settings


def settings_of(requested: str | int, device: str = "cpu") -> dict[str, object]:
    cfg = OmegaConf.create(
        {"window": [64, 96], "overlap": 0.25, "batch_size": 2, "tta": False,
         "precision": requested, "device": device}
    )  # fmt: skip
    return inference_settings(cfg)


def test_bf16_kept_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert settings_of("bf16")["precision"] == "bf16"
    assert settings_of(32) == {
        "window": [64, 96], "overlap": 0.25, "batch_size": 2, "tta": False, "precision": 32
    }  # fmt: skip


def test_bf16_falls_back_to_float32_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(runtime, "cuda_has_bf16", lambda: True)  # an Ampere or later GPU
    monkeypatch.setattr(runtime, "_warned", set())  # warned once a process: start afresh
    with caplog.at_level(logging.WARNING, logger="neuroseg.runtime"):
        assert settings_of("bf16")["precision"] == 32
    assert "no native bf16" in caplog.text
    assert settings_of("bf16", device="cuda:1")["precision"] == "bf16"
