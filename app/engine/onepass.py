"""One-pass completion (the `glcic` kind): a job takes a single forward of the completion network.

`OnePassBatch` has the steppable table's interface (`add`, `step`, `pop`, `cancel`), so the
iteration-level pool runs it beside the search's tables: every job admitted before a step is
answered by that step, all of them in one batched forward with no backward. A job needs one
slot for one step; it has no iterations, restarts or start to choose.
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
from app.engine.stepping import run_to_end
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

    def __init__(self, network: CompletionNetwork, device: torch.device, precision: str = "fp32") -> None:
        self.network = network
        self.device = torch.device(device)
        self.dtype = autocast_dtype(precision, self.device)
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
        """One forward over every live job; all of them finish."""
        if not self._live:
            return []
        keys = list(self._live)
        jobs = [self._live[key][0] for key in keys]
        target = torch.stack([job.target for job in jobs]).to(self.device, torch.float32)
        hole = torch.stack([job.hole for job in jobs])[:, None].to(self.device, torch.float32)
        context = torch.autocast(self.device.type, self.dtype) if self.dtype else contextlib.nullcontext()
        with torch.no_grad(), context:
            completed = self.network(target.masked_fill(hole.bool(), 0.0), hole)
        completed = completed.float().to("cpu")
        now = time.perf_counter()
        for row, key in enumerate(keys):
            _, admitted = self._live.pop(key)
            # no loss is optimised in one pass: 0 keeps the answer's `loss` a number
            self._results[key] = SearchResult(completed[row].clone(), 0.0, 0, now - admitted)
        return keys

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

    def __init__(self, network: CompletionNetwork, device: torch.device, precision: str = "fp32") -> None:
        self.device = torch.device(device)
        autocast_dtype(precision, self.device)  # reject a bad precision now, not on the first request
        self.precision = precision
        self.network = network.to(self.device).eval().requires_grad_(False)

    def batch(self) -> OnePassBatch:
        return OnePassBatch(self.network, self.device, self.precision)

    def run(self, jobs: Sequence[OnePassJob]) -> list[SearchResult]:
        """Every job in one forward; results in job order."""
        return run_to_end(self.batch(), jobs)
