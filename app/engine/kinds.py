"""Model kind -> everything the app does with it: the one entry per kind next to `training.kinds`.

A `ServedKind` owns what a kind means to the service: which request parameters it takes and how
they become its parameters (with the errors that say what to fix), how it makes a job, how a
device worker runs it, what its answer reports, and what one of its steps costs for the bench.
The store, the route, the offline CLI, `evaluate` and `bench` ask the entry and never branch on a
kind's name. A new kind is a `training.kinds.ModelKind` (weights and networks) and a `ServedKind`
registered beside it; `registered` does both for a test's own kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from app.engine.errors import ParamsError
from app.engine.flops import flops_per_completion, flops_per_image_iteration
from app.engine.onepass import OnePassJob, OnePassParams, OnePassRunner
from app.engine.runner import SearchRunner
from app.engine.search import Init, SearchJob, SearchParams, SearchResult, params_for
from app.engine.stepping import StepOptions
from training.checkpoint import LoadedModel
from training.glcic import CompletionNetwork
from training.kinds import KINDS, ModelKind
from training.networks import Discriminator, Encoder, Generator

# taken by every kind: the same seed, the same answer, whether or not the kind draws anything
COMMON_PARAMETERS = frozenset({"seed"})


class Params(Protocol):
    """What the pool and the answer read off any kind's parameters."""

    @property
    def slots(self) -> int: ...  # table rows one job holds

    @property
    def start(self) -> str: ...  # what the answer reports as `init`


class Job(Protocol):
    """Any kind's job: one image at model resolution and its hole, and parameters the pool reads (slots, start)."""

    @property
    def target(self) -> torch.Tensor: ...  # (C, R, R) float in [-1, 1]

    @property
    def hole(self) -> torch.Tensor: ...  # (R, R) bool, True = missing

    @property
    def params(self) -> Params: ...


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


@dataclass(frozen=True)
class ModelFacts:
    """What a kind's parameters may depend on, from the version's card (`ModelEntry.facts`)."""

    key: str
    has_encoder: bool


@dataclass(frozen=True)
class Limits:
    """The caller's defaults and maxima for a request's budget: the server's settings, or none (offline tools)."""

    default_iterations: int | None = None
    default_restarts: int | None = None
    max_iterations: int | None = None
    max_restarts: int | None = None
    patience: int | None = None


@dataclass(frozen=True)
class RequestParameter:
    """One parameter a caller may send for a kind: a form field of `POST /complete`, a flag of
    `python -m app complete`, a name in `GET /v1/models`. The kind's `params` checks what was sent."""

    name: str
    annotation: Any  # int, float, or a Literal of the choices
    description: str
    minimum: int | None = None  # the least value a number may take
    example: Any = None


@dataclass(frozen=True)
class Report:
    """What an answer says about the work behind it (headers and JSON)."""

    start: str
    iterations: int
    loss: float | None  # None: the kind optimises no loss per request


class ServedKind(ABC):
    """One kind as the service runs it. `parameters`: all its `params` takes (beyond `seed`), tuning knobs
    of the offline tools included; `request`: those of them a caller of the service or the CLI may send."""

    model: ModelKind
    parameters: frozenset[str] = frozenset()
    request: tuple[RequestParameter, ...] = ()

    @property
    def name(self) -> str:
        return self.model.name

    def refuse_others(self, sent: Mapping[str, Any], model: ModelFacts) -> None:
        """A parameter sent for a kind that does not take it is a ParamsError naming it, never silently dropped."""
        extra = [name for name, value in sent.items() if value is not None and name not in self.takes]
        if extra:
            raise ParamsError(
                f"model {model.key} (kind {self.name}) takes no {', '.join(extra)}: leave "
                f"{'it' if len(extra) == 1 else 'them'} out, or pick a model that does "
                "(GET /v1/models lists each one's parameters)"
            )

    @property
    def takes(self) -> frozenset[str]:
        return self.parameters | COMMON_PARAMETERS

    @abstractmethod
    def params(self, sent: Mapping[str, Any], model: ModelFacts, limits: Limits) -> Params:
        """The request's parameters (None = not sent) within `limits`; ParamsError says what to change."""

    @abstractmethod
    def job(self, target: torch.Tensor, hole: torch.Tensor, params: Any) -> Job:
        """One image at model resolution (y in [-1, 1], hole True = missing) as this kind's job."""

    @abstractmethod
    def runner(
        self, model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
    ) -> Runner:
        """The loaded version's runner on `device`; `options` say how a stepped kind steps."""

    @abstractmethod
    def report(self, params: Any, result: SearchResult) -> Report:
        """What the answer says about the job's work."""

    @abstractmethod
    def flops(self, model: LoadedModel, params: Any) -> float:
        """FLOPs of one slot's step with these parameters: the bench's %-of-peak column."""


class SearchKind(ServedKind):
    """The latent search: a job takes many steps; its budget, start and seed are the request's."""

    model = KINDS["search"]
    parameters = frozenset(SearchParams.__dataclass_fields__) - COMMON_PARAMETERS  # iterations, restarts, init, ...
    request = (
        RequestParameter(
            "iterations",
            int,
            "Search iterations per restart (default: the start's measured budget, within a server's maximum); "
            "0 with init=encoder answers the encoder's guess G(E(x)) in one pass.",
            minimum=0,
            example=100,
        ),
        RequestParameter("restarts", int, "Independent searches; the lowest loss wins.", minimum=1, example=2),
        RequestParameter(
            "init",
            Init,
            "Where the search starts: `encoder` (the model's guess from the damaged photo; the default where "
            "the model has an encoder) or `random` (a seeded random z; the default otherwise).",
        ),
    )

    def params(self, sent: Mapping[str, Any], model: ModelFacts, limits: Limits) -> SearchParams:
        self.refuse_others(sent, model)
        given = {name: value for name, value in sent.items() if value is not None}
        iterations = given.pop("iterations", limits.default_iterations)
        restarts = given.pop("restarts", limits.default_restarts)
        init = given.pop("init", None)
        for name, value, most in (
            ("iterations", iterations, limits.max_iterations),
            ("restarts", restarts, limits.max_restarts),
        ):
            if value is not None and most is not None and value > most:
                raise ParamsError(f"{name} must be at most {most}, got {value}")
        if init == "encoder" and not model.has_encoder:
            raise ParamsError(
                f"model {model.key} has no encoder, so init=encoder cannot run: use init=random, "
                "or a model version with an encoder (GET /v1/models shows which have one)"
            )
        given.setdefault("patience", limits.patience)
        return params_for(model.has_encoder, init, iterations=iterations, restarts=restarts, **given)

    def job(self, target: torch.Tensor, hole: torch.Tensor, params: SearchParams) -> SearchJob:
        return SearchJob(target, hole, params)

    def runner(
        self, model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
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

    def report(self, params: SearchParams, result: SearchResult) -> Report:
        return Report(params.init, result.iterations, result.loss)

    def flops(self, model: LoadedModel, params: SearchParams) -> float:
        """Per image-iteration, with D only where the parameters weigh the prior."""
        generator, discriminator = model.networks["generator"], model.networks["discriminator"]
        assert isinstance(generator, Generator)
        prior = discriminator if params.prior_weight > 0 else None
        return flops_per_image_iteration(generator, prior, generator.config.z_dim)


class OnePassKind(ServedKind):
    """The GLCIC network: a job is one forward pass, with nothing to tune per request."""

    model = KINDS["glcic"]

    def params(self, sent: Mapping[str, Any], model: ModelFacts, limits: Limits) -> OnePassParams:
        self.refuse_others(sent, model)
        return OnePassParams()

    def job(self, target: torch.Tensor, hole: torch.Tensor, params: OnePassParams) -> OnePassJob:
        return OnePassJob(target, hole, params)

    def runner(
        self, model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
    ) -> OnePassRunner:
        """The completion network's runner, its padded batch sizes warmed up before it is handed out when `options`
        say so (as the search's)."""
        completion = model.networks["completion"]
        assert isinstance(completion, CompletionNetwork)
        runner = OnePassRunner(completion, device, precision, options)
        if runner.options.warm:
            runner.warm()
        return runner

    def report(self, params: OnePassParams, result: SearchResult) -> Report:
        return Report(params.start, 0, None)

    def flops(self, model: LoadedModel, params: OnePassParams) -> float:
        completion = model.networks["completion"]
        assert isinstance(completion, CompletionNetwork)
        return flops_per_completion(completion)


_SERVED: dict[str, ServedKind] = {kind.name: kind for kind in (SearchKind(), OnePassKind())}


def served_kind(name: str) -> ServedKind:
    """The entry of a kind the checkpoint reader knows and the service completes with (KeyError otherwise)."""
    return _SERVED[name]


def request_parameters() -> dict[str, tuple[RequestParameter, list[str]]]:
    """Every request parameter of the registered kinds, with the kinds that take it, in registration order."""
    found: dict[str, tuple[RequestParameter, list[str]]] = {}
    for kind in _SERVED.values():
        for parameter in kind.request:
            known, kinds = found.setdefault(parameter.name, (parameter, []))
            if known != parameter:
                raise ValueError(f"kinds {kinds[0]} and {kind.name} define request parameter {parameter.name!r} apart")
            kinds.append(kind.name)
    return found


def completing() -> frozenset[str]:
    """The kinds the service completes photos with (not the helper networks, such as face framing)."""
    return frozenset(_SERVED)


def _check(kind: ServedKind) -> None:
    unknown = {parameter.name for parameter in kind.request} - kind.parameters
    if unknown:
        raise ValueError(f"kind {kind.name!r} lists request parameters its params do not take: {sorted(unknown)}")


@contextmanager
def registered(kind: ServedKind) -> Iterator[ServedKind]:
    """`kind` known to the checkpoint reader and the service while the block runs (a test's own kind)."""
    if kind.name in KINDS or kind.name in _SERVED:
        raise ValueError(f"kind {kind.name!r} is already registered")
    _check(kind)
    KINDS[kind.name] = kind.model
    _SERVED[kind.name] = kind
    try:
        yield kind
    finally:
        del KINDS[kind.name], _SERVED[kind.name]


for _kind in _SERVED.values():
    _check(_kind)
assert {name for name, kind in KINDS.items() if kind.completes} <= set(_SERVED), (
    "every model kind the checkpoint reader completes with needs an entry here"
)
