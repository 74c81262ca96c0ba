"""Precision names -> autocast dtypes, checked against the device once."""

from __future__ import annotations

import torch

from app.engine.errors import PrecisionError

PRECISIONS = ("fp32", "bf16", "fp16")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None for fp32 (no autocast); bf16 on CPU or CUDA; fp16 on CUDA only (CPU fp16 kernels are slow or missing)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError(f"fp16 needs a CUDA device, not {device}: use bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16
