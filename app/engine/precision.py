"""Precision names -> autocast dtypes, checked against the device once."""

from __future__ import annotations

import torch

from app.engine.errors import PrecisionError

PRECISIONS = ("fp32", "bf16", "fp16")


def native_precision(device: torch.device) -> str:
    """bf16 where the device has bf16 arithmetic units (CUDA compute capability 8.0+, AVX512-bf16 or AMX), else fp32.

    Elsewhere bf16 is emulated and slower than fp32, and fp16 risks overflow in D's logits.
    """
    if device.type == "cuda":
        return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp32"
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "fp32"


def resolve(precision: str, device: torch.device) -> str:
    """`auto` -> the device's native precision; anything else as given."""
    return native_precision(device) if precision == "auto" else precision


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """None for fp32 (no autocast); bf16 on CPU or CUDA; fp16 on CUDA only (CPU fp16 kernels are slow or missing)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError(f"fp16 needs a CUDA device, not {device}: use bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def cuda_flags(deterministic: bool) -> None:
    """The process's CUDA maths: fast by default, bit-reproducible when asked (IMGCOMP_DETERMINISTIC).

    Fast: TF32 in fp32 matmuls and convolutions (10-bit mantissas, on the tensor cores) and cuDNN's fastest
    algorithm per shape, timed once per shape (the padded step sizes keep the shapes few). Deterministic: no
    TF32 and only deterministic cuDNN algorithms, so the same request in the same batch gives the same bits;
    cuDNN may still choose its algorithm by batch size, so a request alone and among others can differ in the
    last bits. Process-wide, like the flags themselves; a no-op without CUDA.
    """
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
