"""Choose the numeric precision a run can really use on this machine's CPU."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (AVX512-BF16 or AMX); elsewhere it is emulated."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):  # a torch build without the oneDNN query
        return False


def resolve_precision(accelerator: str, precision: str | int) -> str | int:
    """`precision`, or "32-true" with one warning when bf16 is asked of a CPU without native bf16.

    Emulated bf16 is several times slower than fp32, so the fast CPU default must not become the
    slow path on a laptop.
    """
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and "bf16" in str(precision) and not cpu_has_bf16():
        log.warning(f"precision={precision}: this CPU has no native bf16; training in 32-true")
        return "32-true"
    return precision
