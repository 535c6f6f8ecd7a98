"""Choose the numeric precision a run can really use on this machine's CPU or GPU."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

# Warnings already given in this process: predict asks once per image, a sweep once per job.
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


def resolve_precision(accelerator: str, precision: str | int) -> str | int:
    """`precision`, or what replaces bf16 where the device only emulates it, with one warning.

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
        _warn_once(f"precision={precision}: this GPU has no native bf16; running in {fallback}")
        return fallback
    if accelerator in ("cpu", "auto") and not cpu_has_bf16():
        _warn_once(f"precision={precision}: this CPU has no native bf16; training in 32-true")
        return "32-true"
    return precision
