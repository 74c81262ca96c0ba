"""One-pass completion (the `glcic` kind): a job takes a single forward of the completion network.

`OnePassBatch` has the steppable table's interface (`add`, `step`, `pop`, `cancel`), so the
iteration-level pool runs it beside the search's tables: every job admitted before a step is
answered by that step, all of them in one batched forward with no backward. A job needs one
slot for one step; it has no iterations, restarts or start to choose.

Like the search's table, a step's batch is padded with blank rows up to the next of the device's
fixed sizes (`StepOptions.sizes`), so a compiled or graph-captured forward meets a handful of
shapes, and the runner can run each size before it serves (`OnePassRunner.warm`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from app.engine.errors import EngineError
from app.engine.precision import autocast_dtype
from app.engine.search import SearchJob, SearchResult, check_job
from app.engine.stepping import StepOptions, run_to_end
from app.engine.transfer import to_device
from training.glcic import CompletionNetwork


@dataclass(frozen=True)
class OnePassParams:
    """A one-pass job's parameters: nothing to choose. It holds one slot for one step and has no start."""

    @property
    def slots(self) -> int:
        return 1

    @property
    def start(self) -> str:
        return "none"


@dataclass(frozen=True)
class OnePassJob:
    """One image to complete at model resolution in one forward: y in [-1, 1] and its hole (True = missing)."""

    target: torch.Tensor  # (C, R, R) float in [-1, 1]
    hole: torch.Tensor  # (R, R) bool, True = missing
    params: OnePassParams = field(default_factory=OnePassParams)

    def check(self, channels: int, resolution: int) -> None:
        """The same shape and coverage checks as a search's: a job this model cannot run fails alone."""
        check_job(self.target, self.hole, channels, resolution)


class OnePassBatch:
    """Jobs waiting for the next `step()`, which answers every one of them. One worker thread owns it."""

    def __init__(
        self,
        network: CompletionNetwork,
        device: torch.device,
        precision: str = "fp32",
        options: StepOptions | None = None,
    ) -> None:
        self.network = network
        self.device = torch.device(device)
        self.dtype = autocast_dtype(precision, self.device)
        self.options = options or StepOptions()
        self.channels, self.resolution = network.config.channels, network.config.resolution
        self._live: dict[int, tuple[OnePassJob, float]] = {}  # key -> (job, admitted)
        self._results: dict[int, SearchResult] = {}
        self._next_key = 0

    @property
    def live_slots(self) -> int:
        return len(self._live)

    def add(self, job: SearchJob | OnePassJob) -> int:
        if not isinstance(job, OnePassJob):
            raise EngineError("a one-pass model runs one-pass jobs: it takes no iterations, restarts or start")
        job.check(self.channels, self.resolution)
        key, self._next_key = self._next_key, self._next_key + 1
        self._live[key] = (job, time.perf_counter())
        return key

    def step(self) -> list[int]:
        """One forward over every live job, padded to the next fixed size; all of them finish."""
        if not self._live:
            return []
        keys = list(self._live)
        jobs = [self._live[key][0] for key in keys]
        completed = self.forward([job.target for job in jobs], [job.hole for job in jobs])
        now = time.perf_counter()
        for row, key in enumerate(keys):
            _, admitted = self._live.pop(key)
            # no loss is optimised in one pass: 0 keeps the answer's `loss` a number
            self._results[key] = SearchResult(completed[row].clone(), 0.0, 0, now - admitted)
        return keys

    def forward(self, targets: Sequence[torch.Tensor], holes: Sequence[torch.Tensor]) -> torch.Tensor:
        """The network's completions of `targets` on the host, (N, C, R, R) float32: one copy of the images and
        their holes onto the device, blank rows (nothing missing) up to the padded size, one forward."""
        rows = len(targets)
        packed = torch.empty(self.options.padded(rows), self.channels + 1, self.resolution, self.resolution)
        packed[rows:] = 0.0
        packed[:rows, : self.channels] = torch.stack(list(targets))
        packed[:rows, self.channels] = torch.stack(list(holes))
        on_device = to_device(packed, self.device)
        if self.dtype is not None:
            on_device = on_device.contiguous(memory_format=torch.channels_last)
        target, hole = on_device[:, : self.channels], on_device[:, self.channels :]
        context = torch.autocast(self.device.type, self.dtype) if self.dtype else contextlib.nullcontext()
        with torch.no_grad(), context:
            completed = self.network(target.masked_fill(hole.bool(), 0.0), hole)
        return completed[:rows].float().to("cpu")

    def pop(self, key: int) -> SearchResult:
        if key not in self._results:
            raise EngineError(f"job {key} is not finished (or was already popped)")
        return self._results.pop(key)

    def cancel(self, key: int) -> None:
        self._live.pop(key, None)
        self._results.pop(key, None)


class OnePassRunner:
    """Owns one one-pass model's completion network on one device."""

    has_encoder = False

    def __init__(
        self,
        network: CompletionNetwork,
        device: torch.device,
        precision: str = "fp32",
        options: StepOptions | None = None,
    ) -> None:
        self.device = torch.device(device)
        autocast_dtype(precision, self.device)  # reject a bad precision now, not on the first request
        self.precision = precision
        self.options = options or StepOptions()
        self.network = network.to(self.device).eval().requires_grad_(False)
        if precision != "fp32":
            # channels_last: 1.35-1.6x a bf16 forward on this CPU at batch 1 to 32 (docs/bench/one-pass-layout); fp32
            # keeps the contiguous layout, and with it its answers bit for bit
            self.network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def batch(self) -> OnePassBatch:
        return OnePassBatch(self.network, self.device, self.precision, self.options)

    def warm(self) -> None:
        """Two forwards at every padded size before the runner serves, as the search's runner does: the first
        request at a size then finds its kernels chosen and its memory cached instead of paying for both."""
        batch = self.batch()
        side, channels = self.network.config.resolution, self.network.config.channels
        hole = torch.zeros(side, side, dtype=torch.bool)
        hole[side // 4 : side - side // 4, side // 4 : side - side // 4] = True
        for size in self.options.sizes:
            for _ in range(2):
                batch.forward([torch.zeros(channels, side, side)] * size, [hole] * size)

    def run(self, jobs: Sequence[OnePassJob]) -> list[SearchResult]:
        """Every job in one forward; results in job order."""
        return run_to_end(self.batch(), jobs)
