"""Per-row transcendental functions that give a row the same bits alone and among others.

PyTorch's vectorised CPU kernels evaluate exp, log1p, pow and their kin with SIMD
approximations over whole vectors and with scalar code over the remainder, and the
two differ in the last bit. A one-row batch is all remainder; the same row among 32
others sits inside a vector. A last-bit difference in a search's loss or in Adam's
bias correction grows over a hundred iterations into visible levels (up to 2 of 255,
measured on the shipped faces model in fp32), so on the CPU the few (S,)-shaped
per-row values go through these functions one element at a time: every row takes the
path a lone row takes, whatever shares its batch, and batches of fewer rows than a
vector keep the bits they always had. The wide per-pixel tensors need nothing: their
rows are whole vectors in any batch. CUDA runs the same code for every element, so
there the function runs once over the whole tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def per_row(function: Callable[[torch.Tensor], torch.Tensor], values: torch.Tensor) -> torch.Tensor:
    """`function(values)` for an elementwise `function`, on the CPU one element at a time (S small calls)."""
    if values.device.type != "cpu" or values.numel() <= 1:
        return function(values)
    return torch.stack([function(element) for element in values.reshape(-1).unbind()]).reshape(values.shape)
