"""Model kind -> how a device worker runs it: the app's one table next to `training.kinds`.

The store, the loader, `/v1/models`, the completion route and the pool ask `engine_for(kind)`
instead of branching on a kind's name. A kind is either stepped until done (the search: many
steps per job) or one-pass (one step per job, nothing to tune per request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from app.engine.onepass import OnePassJob, OnePassParams, OnePassRunner
from app.engine.runner import SearchRunner
from app.engine.search import SearchJob, SearchParams, SearchResult
from app.engine.stepping import StepOptions
from training.checkpoint import LoadedModel
from training.glcic import CompletionNetwork
from training.kinds import KINDS
from training.networks import Discriminator, Encoder, Generator

Job = SearchJob | OnePassJob


class Batch(Protocol):
    """A steppable slot table: what a pool worker admits into, steps and pops, between any two steps."""

    @property
    def live_slots(self) -> int: ...

    def add(self, job: Any) -> int: ...

    def step(self) -> list[int]: ...

    def pop(self, key: int) -> SearchResult: ...

    def cancel(self, key: int) -> None: ...


class Runner(Protocol):
    """One model version's networks on one device; every job runs through a fresh `batch()`."""

    @property
    def has_encoder(self) -> bool: ...

    def batch(self) -> Batch: ...

    def run(self, jobs: Sequence[Any]) -> list[SearchResult]: ...


def make_job(target: torch.Tensor, hole: torch.Tensor, params: SearchParams | OnePassParams) -> Job:
    """The job the parameters are for: a one-pass model's fixed ones make a one-pass job, a search's a search."""
    if isinstance(params, OnePassParams):
        return OnePassJob(target, hole, params)
    return SearchJob(target, hole, params)


class RunnerFactory(Protocol):
    """A kind's runner from a loaded version on a device; `options` say how a stepped kind steps."""

    def __call__(
        self, model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
    ) -> Runner: ...


def _search_runner(
    model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
) -> SearchRunner:
    """The search's runner, its padded step sizes warmed up before it is handed out when `options` say so."""
    generator, discriminator = model.networks["generator"], model.networks["discriminator"]
    encoder = model.networks.get("encoder")
    assert isinstance(generator, Generator) and isinstance(discriminator, Discriminator)
    assert encoder is None or isinstance(encoder, Encoder)
    runner = SearchRunner(generator, discriminator, device, precision, encoder, options)
    if runner.options.warm:
        runner.warm()
    return runner


def _one_pass_runner(
    model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
) -> OnePassRunner:
    """The one-pass runner: one forward per job and no table to pad, so the step's options do not apply."""
    completion = model.networks["completion"]
    assert isinstance(completion, CompletionNetwork)
    return OnePassRunner(completion, device, precision)


@dataclass(frozen=True)
class Engine:
    """How the app serves one kind: its runner from a loaded version, and whether a job is one step."""

    kind: str
    one_pass: bool  # one step per job: `iterations`, `restarts` and `init` do not apply
    runner: RunnerFactory


ENGINES: dict[str, Engine] = {
    "search": Engine("search", one_pass=False, runner=_search_runner),
    "glcic": Engine("glcic", one_pass=True, runner=_one_pass_runner),
}
COMPLETING = {name for name, kind in KINDS.items() if kind.completes}  # not the helper networks (face framing)
assert set(ENGINES) == COMPLETING, "every model kind the checkpoint reader completes with needs an engine here"


def engine_for(kind: str) -> Engine:
    """The engine of a kind that `training.kinds` knows (the checkpoint reader refuses the others)."""
    return ENGINES[kind]
