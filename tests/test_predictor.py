"""Inference settings from a predict/evaluate config: typed once, precision resolved once."""

import logging

import pytest
from omegaconf import OmegaConf

from neuroseg import runtime
from neuroseg.errors import UsageError
from neuroseg.inference.settings import InferenceSettings, inference_settings


def settings_of(requested: str | int, device: str = "cpu") -> InferenceSettings:
    cfg = OmegaConf.create(
        {"window": [64, 96], "overlap": 0.25, "batch_size": 2, "tta": False,
         "precision": requested, "device": device}
    )  # fmt: skip
    return inference_settings(cfg, stage="predict")


def test_bf16_kept_on_a_cpu_that_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert settings_of("bf16").precision == "bf16"
    settings = settings_of(32)
    assert (settings.window, settings.overlap, settings.batch_size) == ([64, 96], 0.25, 2)
    assert (settings.tta, settings.precision, settings.device) == (False, "32", "cpu")


def test_bf16_falls_back_to_float32_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(runtime, "cuda_has_bf16", lambda: True)  # an Ampere or later GPU
    monkeypatch.setattr(runtime, "_warned", set())  # warned once a process: start afresh
    with caplog.at_level(logging.WARNING, logger="neuroseg.runtime"):
        assert settings_of("bf16").precision == "32"
    assert "no native bf16" in caplog.text
    assert settings_of("bf16", device="cuda:1").precision == "bf16"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("window", [60, 64], "multiples of 32"),
        ("overlap", 1.0, "overlap=1.0"),
        ("batch_size", 0, "batch_size=0"),
        ("precision", "16", "precision=16"),
        ("threshold", 1.5, "threshold=1.5"),
    ],
)
def test_settings_no_run_could_use_are_refused_naming_the_key(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        inference_settings(OmegaConf.create({key: value}), stage="predict")
