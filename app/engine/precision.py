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


def deterministic_cuda() -> None:
    """Same request, same batch, same bits on CUDA: no TF32 (10-bit mantissas in fp32 matmuls and convolutions)
    and only deterministic cuDNN algorithms, not the fastest one a benchmark run happens to pick.

    Process-wide, like the flags themselves; a no-op without CUDA. cuDNN may still choose its algorithm by
    batch size, so on CUDA a request alone and among others can differ in the last bits (the README says so).
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
