"""A CUDA-less stand-in that counts where the host would wait for a CUDA device, and the tensors made.

Every call that on CUDA makes the host wait for the device's queue to drain is recorded by name,
whatever device the tensors are on: reading a value (`item`, `bool`, `float`, `int`, `tolist`,
`numpy`), a result whose size depends on the data (`nonzero`, a boolean index), and a copy
between devices that is not `non_blocking` (`.to(device)`, `.cpu()`, `torch.tensor(..., device=)`).
Non-blocking copies are counted apart. On the CPU the same code runs the same calls, so the count
holds without a GPU; it over-counts host-only work (a job's checks on its own CPU tensors).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

READS = {"__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy", "cpu", "nonzero", "masked_select"}
COPIES = {"to", "cuda", "copy_"}


def _names_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if "device" in kwargs:
        return True
    return any(isinstance(arg, torch.device | str) for arg in args[1:])


def _boolean_index(args: tuple[Any, ...]) -> bool:
    index = args[1] if len(args) > 1 else None
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in parts)


class HostSyncs(TorchFunctionMode):
    """Counts host waits (`waits`, by call name) and non-blocking copies (`queued`) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: Counter[str] = Counter()
        self.queued = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in READS:
            self.waits[name] += 1
        elif name == "__getitem__" and _boolean_index(args):
            self.waits["boolean index"] += 1
        elif name in COPIES and (name != "to" or _names_device(args, kwargs)):
            if kwargs.get("non_blocking"):
                self.queued += 1
            else:
                self.waits[f"blocking {name}"] += 1
        elif name in ("tensor", "as_tensor") and kwargs.get("device") is not None:
            self.waits["blocking tensor"] += 1
        return func(*args, **kwargs)

    @property
    def total(self) -> int:
        return sum(self.waits.values())


class Allocations(TorchDispatchMode):
    """Counts the tensors ATen ops return in storage none of their inputs had: a device allocation each."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        inputs = {
            value.untyped_storage().data_ptr()
            for value in torch.utils._pytree.tree_leaves((args, kwargs))
            if isinstance(value, torch.Tensor)
        }
        for value in torch.utils._pytree.tree_leaves(result):
            if isinstance(value, torch.Tensor) and value.untyped_storage().data_ptr() not in inputs:
                self.count += 1
        return result
