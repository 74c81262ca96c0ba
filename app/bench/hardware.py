"""What the machine can do, measured in the bench's own run: the peak that step FLOPs (app/engine/flops.py) meet."""

from __future__ import annotations

import time

import torch


class PeakMeter:
    """The best square-matmul FLOP/s seen during the run, per dtype: the ceiling a conv-heavy step is held to.

    Sampled briefly before every cell and kept as a running maximum, because on a shared
    machine any single measurement mostly measures the neighbours; the maximum is the
    closest this run got to the hardware's own figure, so shares of it are conservative.
    """

    def __init__(self, device: torch.device, size: int = 1024) -> None:
        self.device = device
        self.size = size
        self.best: dict[torch.dtype, float] = {}

    def sample(self, dtype: torch.dtype, seconds: float = 0.3) -> float:
        a = torch.randn(self.size, self.size).to(self.device, dtype)
        b = torch.randn(self.size, self.size).to(self.device, dtype)
        self._timed(a, b)  # first call allocates and picks kernels
        flops = 2.0 * self.size**3
        end = time.perf_counter() + seconds
        best = self.best.get(dtype, 0.0)
        while time.perf_counter() < end:
            best = max(best, flops / self._timed(a, b))
        self.best[dtype] = best
        return best

    def _timed(self, a: torch.Tensor, b: torch.Tensor) -> float:
        started = time.perf_counter()
        torch.mm(a, b)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started
