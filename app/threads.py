"""The process's thread pools sized together, once, where a service or a batch run starts.

PyTorch's intra-op threads are the setting's (`torch_threads`). NumPy's and SciPy's OpenBLAS get one thread
each: their products in the finish are small and already run in several post-processing threads at once, and
OpenBLAS's own threads spin after each call on the cores the pool, the event loop and the device threads
share (the 1280x886 bench photo's finish: 56 -> 28 ms of CPU, `scripts/profile_outside.py`). OpenCV's
threads sleep when idle and are left as they are.
"""

from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits


def size_thread_pools(torch_threads: int | None) -> None:
    """Process-wide: one service (or batch run) per process."""
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    threadpool_limits(1, user_api="blas")
