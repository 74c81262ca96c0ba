"""Host tensors onto the device without making the host wait for the device."""

from __future__ import annotations

import torch


def to_device(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A copy of a host tensor on `device`, queued behind the step in flight instead of waited for.

    On CUDA it goes from pinned memory (a non-blocking copy from pageable memory would still wait);
    on the CPU it is the tensor itself.
    """
    if device.type == "cuda":
        host = host.pin_memory()
    return host.to(device, non_blocking=True)
