"""Previous defaults against new ones, through HTTP, in one run: what a caller who sends no budget gets.

Each side is a real server (`python -m app serve` on a loopback port, a process
of its own, so its CPU per completion is counted apart from the clients') holding
one model version at one precision; clients send the same
seeded damaged photos with no `iterations`, `restarts` or `init`, so each
server answers with its model's default start and budget. Both servers are up
for the whole run and the cells alternate between them per client count, so
a machine that drifts drifts for both. A side whose kind takes no budget (one
pass) also gets its network alone, in this process, at a batch of each client
count: what the HTTP rows could reach if everything around the network were free.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import get_args

import torch

from app.bench.errors import BenchError
from app.bench.load import Counters, Measurement, Workload, http_cell
from app.bench.report import Row
from app.config import Precision
from app.engine.compose import prepare
from app.engine.kinds import Limits, Params, Runner
from app.engine.precision import resolve
from app.store import ModelEntry, ModelStore


@dataclass(frozen=True)
class Side:
    """One side of the comparison: `model@precision[/iterations]`, e.g. faces:1@fp32 or faces:2@auto/0.

    `/iterations` sets the server's default budget (IMGCOMP_DEFAULT_ITERATIONS), e.g. 0 for the one-pass answer.
    """

    model: str
    precision: Precision
    iterations: int | None = None

    @classmethod
    def parse(cls, text: str) -> Side:
        spec, _, iterations = text.strip().partition("/")
        model, _, precision = spec.partition("@")
        for known in get_args(Precision):
            if (precision or "auto") == known:
                return cls(model, known, int(iterations) if iterations else None)
        raise BenchError(f"precision {precision!r} of {text!r} is not one of {', '.join(get_args(Precision))}")


@contextmanager
def _store_of(entry: ModelEntry) -> Iterator[Path]:
    """A model store holding only this version (linked, not copied), so its server loads nothing else."""
    root = Path(tempfile.mkdtemp(prefix="imgcomp-bench-"))
    try:
        (root / entry.name).mkdir()
        (root / entry.name / entry.version).symlink_to(entry.path.resolve(), target_is_directory=True)
        yield root
    finally:
        shutil.rmtree(root)


def _default_params(entry: ModelEntry) -> Params:
    """What a request that sends no parameter gets from this version's kind (the server's defaults aside)."""
    return entry.served.params({}, entry.facts, Limits())


def _flops(entry: ModelEntry) -> float:
    """Per slot-step of this version's default request, as its kind counts it."""
    return entry.served.flops(entry.load_served(torch.device("cpu")), _default_params(entry))


def network_cell(
    entry: ModelEntry, runner: Runner, batch: int, workload: Workload, args: argparse.Namespace
) -> Measurement:
    """The version's network alone at `batch` on `runner` (built once per side): the workload's first photos
    prepared as the route prepares them, run back to back for `args.duration` s after `args.warmup` s (one
    latency per image, the batch's)."""
    params = _default_params(entry)
    jobs = []
    for index in range(batch):
        request = workload.request(index, 0)
        prepared = prepare(request.image, request.hole, entry.resolution)
        jobs.append(entry.served.job(prepared.target, prepared.hole, params))
    end = time.perf_counter() + args.warmup
    while time.perf_counter() < end:
        runner.run(jobs)
    latencies: list[float] = []
    start = time.perf_counter()
    runs = 0
    while time.perf_counter() - start < args.duration:
        began = time.perf_counter()
        runner.run(jobs)
        latencies += [time.perf_counter() - began] * batch
        runs += 1
    return Measurement(time.perf_counter() - start, latencies, Counters(0, 0), Counters(runs * batch, runs))


def defaults_rows(args: argparse.Namespace, workload: Workload, emit: Callable[[Row], None]) -> None:
    """Every side at every client count of `--http-clients`, interleaved."""
    from app.bench.server import cpu_seconds, server_process

    store = ModelStore.discover(args.model_store, args.model.partition(":")[0])
    sides = [Side.parse(text) for text in args.defaults.split(",") if text.strip()]
    entries = [store.resolve(side.model) for side in sides]
    for side, entry in zip(sides, entries, strict=True):
        if side.iterations is not None and "iterations" not in entry.served.parameters:
            raise BenchError(f"{entry.key} (kind {entry.kind}) takes no /iterations: drop it from {side.model}")
    with ExitStack() as stack:
        servers = []
        for side, entry in zip(sides, entries, strict=True):
            root = stack.enter_context(_store_of(entry))
            env = {
                "IMGCOMP_MODEL_STORE": str(root),
                "IMGCOMP_DEFAULT_MODEL": entry.name,
                "IMGCOMP_DEVICES": args.device,
                "IMGCOMP_PRECISION": side.precision,
                "IMGCOMP_QUEUE_SIZE": str(max(args.http_clients)),
                "IMGCOMP_SLOTS_PER_DEVICE": str(args.slots),
                "IMGCOMP_REQUEST_TIMEOUT_S": "3600",
            }
            if side.iterations is not None:
                env["IMGCOMP_DEFAULT_ITERATIONS"] = str(side.iterations)
            if args.threads is not None:
                env["IMGCOMP_TORCH_THREADS"] = str(args.threads)
            servers.append(stack.enter_context(server_process(env)))
        flops = [_flops(entry) for entry in entries]
        for clients in args.http_clients:
            for side, entry, (url, pid), cost in zip(sides, entries, servers, flops, strict=True):
                measurement = asyncio.run(http_cell(url, entry.key, workload, clients, args, partial(cpu_seconds, pid)))
                precision = resolve(side.precision, torch.device(args.device))
                budget = "" if side.iterations is None else f" {side.iterations} it"
                # the start for a kind that has one (search), else the kind (glcic)
                start = _default_params(entry).start if "init" in entry.served.parameters else entry.kind
                region = f" region={args.region}" if args.region else ""
                label = f"{entry.key} {start}{budget}{region}"
                emit(Row.of(label, "http", precision, clients, measurement, cost))
        for side, entry, cost in zip(sides, entries, flops, strict=True):
            if "iterations" in entry.served.parameters:
                continue  # a search's rate depends on its budget: its network alone is `bench`'s other modes
            device = torch.device(args.device)
            precision = resolve(side.precision, device)
            runner = entry.served.runner(entry.load_served(device), device, precision)
            for clients in args.http_clients:
                measurement = network_cell(entry, runner, clients, workload, args)
                emit(Row.of(f"{entry.key} {entry.kind} network", "in-process", precision, clients, measurement, cost))
