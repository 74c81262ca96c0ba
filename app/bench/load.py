"""Closed-loop clients: each sends a request, awaits its answer, sends the next, for a timed window.

The mixed workload is a pure function of (seed, client, request number), so
every mode and both transports serve the same requests in the same order.
Throughput is read from the server's step counters (rows stepped = image-
iterations), which stays exact when the window is shorter than a request.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from app.engine.compose import prepare
from app.engine.search import SearchJob, SearchParams, SearchResult
from app.metrics import Metrics
from training.masks import make_mask

# masks a restoration service sees: one block, scribbles, several blocks (random80/half are evaluation stress cases)
_MASK_KINDS = ("center", "strokes", "blocks")


@dataclass(frozen=True)
class Request:
    """One client request: the damaged photo, its hole, and the search budget."""

    image: np.ndarray  # (H, W, 3) uint8
    hole: np.ndarray  # (H, W) bool
    iterations: int | None  # None: the server's default budget
    restarts: int | None
    seed: int

    def job(self, resolution: int) -> SearchJob:
        assert self.iterations is not None and self.restarts is not None, "the engine modes send explicit budgets"
        prepared = prepare(self.image, self.hole, resolution)
        params = SearchParams(iterations=self.iterations, restarts=self.restarts, seed=self.seed)
        return SearchJob(prepared.target, prepared.hole, params)


@dataclass(frozen=True)
class Workload:
    """Real photos with seeded holes and iteration budgets drawn uniformly from [low, high]
    (or none at all, `low=None`: every request takes the server's defaults)."""

    images: np.ndarray  # (N, H, W, 3) uint8
    low: int | None
    high: int | None
    restarts: int | None
    seed: int

    def request(self, client: int, number: int) -> Request:
        rng = np.random.default_rng((self.seed, client, number))
        image = self.images[int(rng.integers(len(self.images)))]
        hole = make_mask(_MASK_KINDS[int(rng.integers(len(_MASK_KINDS)))], image.shape[0], rng)
        image = image.copy()
        image[hole] = 128  # the damage: no method may borrow the hole's true pixels
        iterations = None if self.low is None or self.high is None else int(rng.integers(self.low, self.high + 1))
        return Request(image, hole, iterations, self.restarts, seed=number)


@dataclass
class Counters:
    """Cumulative step counters of one server: rows stepped (image-iterations) and steps, and where the server
    is a process of its own, its CPU seconds (NaN otherwise)."""

    slots: float
    steps: float
    cpu_s: float = math.nan


@dataclass
class Measurement:
    """What the clients saw in the window, and the server's counters around it."""

    seconds: float
    latencies: list[float]  # of requests that finished inside the window
    before: Counters
    after: Counters
    # CPU seconds of this process (the clients, and a server only where it runs in a thread here) in the window
    own_cpu_s: float = math.nan


Send = Callable[[Request], Awaitable[None]]


async def closed_loop(
    send: Send,
    workload: Workload,
    clients: int,
    warmup: float,
    duration: float,
    counters: Callable[[], Awaitable[Counters]],
) -> Measurement:
    """`clients` loops of send-and-await; measures the `duration` s after `warmup` s, then cancels the rest."""
    finished: list[tuple[float, float]] = []

    async def client(index: int) -> None:
        number = 0
        while True:
            request = workload.request(index, number)
            started = time.perf_counter()
            await send(request)
            finished.append((time.perf_counter(), time.perf_counter() - started))
            number += 1

    tasks = [asyncio.create_task(client(index)) for index in range(clients)]
    try:
        await asyncio.sleep(warmup)
        before, start, own = await counters(), time.perf_counter(), time.process_time()
        await asyncio.sleep(duration)
        after, end, own = await counters(), time.perf_counter(), time.process_time() - own
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [latency for done, latency in finished if start <= done <= end]
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise RuntimeError("a bench client failed") from task.exception()
    return Measurement(end - start, latencies, before, after, own)


def engine_counters(metrics: Metrics) -> Callable[[], Awaitable[Counters]]:
    """The step counters of an in-process backend, read from its registry."""

    async def read() -> Counters:
        value = metrics.registry.get_sample_value
        return Counters(value("imgcomp_slots_per_step_sum") or 0.0, value("imgcomp_slots_per_step_count") or 0.0)

    return read


def engine_sender(submit: Callable[[str, SearchJob], Awaitable[SearchResult]], model: str, resolution: int) -> Send:
    """Requests straight into a backend's `submit` (preparing the job costs what the route's pool thread pays)."""

    async def send(request: Request) -> None:
        await submit(model, request.job(resolution))

    return send


def png(array: np.ndarray) -> bytes:
    """A lossless PNG of `array`, as a client sends one."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def http_sender(http: httpx.AsyncClient, model: str, region: str | None = None) -> Send:
    """Requests as `POST /complete` uploads (with `region` where given); anything but 200 stops the bench with the
    server's answer."""

    async def send(request: Request) -> None:
        files = {
            "image": ("photo.png", png(request.image), "image/png"),
            "mask": ("mask.png", png(request.hole.astype(np.uint8) * 255), "image/png"),
        }
        optional = {"iterations": request.iterations, "restarts": request.restarts, "region": region}
        data = {"model": model, "seed": request.seed} | {k: v for k, v in optional.items() if v is not None}
        response = await http.post("/complete", files=files, data=data)
        if response.status_code != 200:
            raise RuntimeError(f"POST /complete answered {response.status_code}: {response.text[:300]}")

    return send


def http_counters(http: httpx.AsyncClient, cpu: Callable[[], float] | None = None) -> Callable[[], Awaitable[Counters]]:
    """The step counters of a server, scraped from its /metrics like Prometheus would; `cpu`: its CPU seconds."""

    async def read() -> Counters:
        text = (await http.get("/metrics")).text
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("imgcomp_slots_per_step")
        }
        slots, steps = values.get("imgcomp_slots_per_step_sum", 0.0), values.get("imgcomp_slots_per_step_count", 0.0)
        return Counters(slots, steps, cpu() if cpu is not None else math.nan)

    return read


async def until_idle(http: httpx.AsyncClient, timeout: float = 30.0) -> None:
    """The cancelled clients' searches leave the server before the next cell starts."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        text = (await http.get("/metrics")).text
        live = [line for line in text.splitlines() if line.startswith("imgcomp_live_slots{")]
        if all(float(line.rsplit(" ", 1)[1]) == 0 for line in live):
            return
        await asyncio.sleep(0.1)


async def http_cell(
    url: str,
    model: str,
    workload: Workload,
    clients: int,
    args: argparse.Namespace,
    cpu: Callable[[], float] | None = None,
) -> Measurement:
    """One closed-loop window of `clients` against a server over HTTP; returns once the server is idle again.
    `cpu`: the server's CPU seconds, where it is a process of its own."""
    limits = httpx.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, timeout=None, limits=limits) as http:
        counters = http_counters(http, cpu)
        sender = http_sender(http, model, args.region)
        measurement = await closed_loop(sender, workload, clients, args.warmup, args.duration, counters)
        await until_idle(http)
        return measurement
