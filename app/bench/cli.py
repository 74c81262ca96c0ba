"""The bench's command line and its run: every cell on the same machine, the same networks, one process."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
from collections.abc import Callable
from typing import TextIO

import numpy as np
import torch

from app.bench.batcher import RequestBatcher
from app.bench.errors import BenchError
from app.bench.hardware import PeakMeter
from app.bench.load import (
    Measurement,
    Workload,
    closed_loop,
    engine_counters,
    engine_sender,
    http_cell,
)
from app.bench.report import Row, plot, ratios, table, write_csv
from app.engine.flops import flops_per_image_iteration
from app.engine.runner import SearchRunner
from app.metrics import Metrics
from app.pool import IterationPool
from app.store import ModelEntry, ModelStore
from training.glcic import CompletionNetwork

_PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, load average {load} at the start"
    )


def _backend(
    mode: str, runner: SearchRunner, key: str, metrics: Metrics, args: argparse.Namespace, queue: int
) -> RequestBatcher | IterationPool:
    if mode == "one-at-a-time":
        return RequestBatcher(runner, metrics, max_requests=1, wait_s=0.0, device=args.device)
    if mode == "request-batch":
        per_batch = max(1, args.slots // args.restarts)
        return RequestBatcher(runner, metrics, per_batch, args.batch_wait_ms / 1000, device=args.device)
    return IterationPool([(args.device, {key: runner})], metrics, args.slots, queue)


def _engine_cell(
    mode: str, runner: SearchRunner, entry: ModelEntry, workload: Workload, clients: int, args: argparse.Namespace
) -> Measurement:
    metrics = Metrics()
    backend = _backend(mode, runner, entry.key, metrics, args, queue=max(clients, 1))
    backend.start()
    try:
        send = engine_sender(backend.submit, entry.key, entry.resolution)
        return asyncio.run(closed_loop(send, workload, clients, args.warmup, args.duration, engine_counters(metrics)))
    finally:
        backend.stop(0.0)


def _http_rows(
    entry: ModelEntry,
    workload: Workload,
    args: argparse.Namespace,
    flops: float,
    emit: Callable[[Row], None],
) -> None:
    from app.bench.server import serving  # the service stack only when this mode runs
    from app.config import Settings

    settings = Settings(
        model_store=args.model_store,
        default_model=entry.name,
        devices=args.device,
        precision=args.precisions[0],
        queue_size=max(args.http_clients),
        slots_per_device=args.slots,
        request_timeout_s=3600,
        default_iterations=args.iterations[0],
        max_iterations=args.iterations[-1],
        default_restarts=args.restarts,
        max_restarts=args.restarts,
        log_level="warning",
        torch_threads=args.threads,
    )
    with serving(settings) as url:
        for clients in args.http_clients:
            measurement = asyncio.run(http_cell(url, entry.key, workload, clients, args))
            emit(Row.of("iteration", "http", args.precisions[0], clients, measurement, flops))


def _entry(args: argparse.Namespace) -> ModelEntry:
    return ModelStore.discover(args.model_store, args.model.partition(":")[0]).resolve(args.model)


def _search_entry(args: argparse.Namespace) -> ModelEntry:
    """The model the batching modes time: they time search steps, so a search model."""
    entry = _entry(args)
    if "iterations" not in entry.served.parameters:
        raise BenchError(
            f"{entry.key} (kind {entry.kind}) takes no iterations: the batching modes time search steps; compare "
            f"it with a search model through HTTP with --defaults faces@auto,{entry.key}@auto (--profile times "
            "its forward)"
        )
    return entry


def _run_profile(args: argparse.Namespace, out: TextIO) -> int:
    """`--profile 1,8,32,64`: a step's parts per batch size, precision and variant (a one-pass model's forward
    per memory layout); one table."""
    from app.bench.profile import profile, profile_one_pass

    entry = _entry(args)
    device = torch.device(args.device)
    if "iterations" not in entry.served.parameters:
        completion = entry.load_served(device).networks["completion"]
        assert isinstance(completion, CompletionNetwork)
        out.write(f"forward profile of {entry.key} on {args.device}: {_machine(args.device)}\n")
        profile_one_pass(completion, device, args.profile, args.precisions, out)
        return 0
    checkpoint = entry.load(device)
    out.write(f"step profile of {entry.key} on {args.device}: {_machine(args.device)}\n")
    profile(
        checkpoint.generator,
        checkpoint.discriminator,
        device,
        args.profile,
        args.precisions,
        out,
        compile_step=args.compile,
    )
    return 0


def _run_finish(args: argparse.Namespace, out: TextIO) -> int:
    """`--finish 256,1024,4800`: the cost of putting an answer back into ever larger uploads; one table."""
    from app.bench.finish import bench_finish

    entry = _entry(args)
    with np.load(args.images) as archive:
        face = archive["images"][0]
    out.write(f"finishing {entry.key}'s answers on {_machine('cpu')}\n")
    bench_finish(face, args.finish, entry.resolution, out)
    return 0


def _run_defaults(args: argparse.Namespace, out: TextIO) -> int:
    """`--defaults OLD,NEW`: each side's server answers requests that carry no budget; one table."""
    from app.bench.defaults import defaults_rows

    with np.load(args.images) as archive:
        workload = Workload(archive["images"], None, None, None, args.seed)
    machine = _machine(args.device)
    out.write(f"defaults through HTTP on {args.device}: {machine}\n")
    rows: list[Row] = []

    def emit(row: Row) -> None:
        rows.append(row)
        out.write(f"  {row.label} x{row.clients}: {row.completions_per_s:.3f} compl/s, {row.completed} done\n")
        out.flush()

    defaults_rows(args, workload, emit)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "defaults.csv")
    title = f"each server's default answer through HTTP ({machine})"
    plot(rows, args.out / "defaults.png", title, per_completion=True)
    out.write("\n" + table(rows) + "\n")
    out.write(f"wrote {args.out / 'defaults.csv'} and {args.out / 'defaults.png'}\n")
    return 0


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Measure every cell, print the table and the ratios, write CSV and PNG under `args.out`."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.defaults:
        return _run_defaults(args, out)
    if args.profile:
        return _run_profile(args, out)
    if args.finish:
        return _run_finish(args, out)
    entry = _search_entry(args)
    with np.load(args.images) as archive:
        workload = Workload(archive["images"], args.iterations[0], args.iterations[-1], args.restarts, args.seed)
    device = torch.device(args.device)
    checkpoint = entry.load(device)
    machine = _machine(args.device)
    out.write(f"model {entry.key} ({entry.resolution}px) on {args.device}: {machine}\n")
    meter = PeakMeter(device)
    for name in args.precisions:
        meter.sample(_PRECISION_DTYPES[name], seconds=1.0)
    flops = flops_per_image_iteration(checkpoint.generator, checkpoint.discriminator, checkpoint.generator.config.z_dim)
    out.write(f"{flops / 1e9:.3f} GFLOP per image-iteration (G+D forward, backward to z)\n")
    runners = {}
    for name in args.precisions:
        runners[name] = SearchRunner(checkpoint.generator, checkpoint.discriminator, device, name)
    out.flush()

    rows: list[Row] = []

    def emit(row: Row) -> None:
        for name in args.precisions:  # between cells, so the peak is sampled as often as the machine changes
            meter.sample(_PRECISION_DTYPES[name])
        rows.append(row)
        out.write(f"  {row.label} x{row.clients}: {row.image_iterations_per_s:.1f} img-it/s, {row.completed} done\n")
        out.flush()

    first = args.precisions[0]
    for clients in args.clients:  # modes interleaved per client count, so drifting neighbours hit all alike
        for mode in args.modes:
            for name in args.precisions if mode == "iteration" else [first]:
                measurement = _engine_cell(mode, runners[name], entry, workload, clients, args)
                emit(Row.of(mode, "engine", name, clients, measurement, flops))
    if args.http_clients:
        _http_rows(entry, workload, args, flops, emit)

    peaks = {name: meter.best[_PRECISION_DTYPES[name]] for name in args.precisions}
    for row in rows:
        row.peak_share = row.gflops * 1e9 / peaks[row.precision]
    out.write(
        "matmul peak (best 1024^3 matmul seen during the run): "
        + ", ".join(f"{name} {peak / 1e9:.0f} GFLOP/s" for name, peak in peaks.items())
        + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "bench.csv")
    title = f"{entry.key} on {args.device} ({machine}); budgets {args.iterations[0]}-{args.iterations[-1]}"
    plot(rows, args.out / "bench.png", title)
    out.write("\n" + table(rows) + "\n\n")
    out.write(ratios(rows, "iteration", ("one-at-a-time", "request-batch")) + "\n")
    out.write(f"wrote {args.out / 'bench.csv'} and {args.out / 'bench.png'}\n")
    return 0
