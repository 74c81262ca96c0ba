"""Device workers that run one request's search at a time (issue 4's simple scheduler).

Routes hand a `SearchJob` to `submit()` and await the asyncio future it returns;
a worker thread per device takes jobs from one bounded queue, runs them with
the model's `SearchRunner`, and resolves the future on the event loop with
`call_soon_threadsafe`. The device thread only runs searches: decoding,
resizing, blending and encoding happen in the app's thread pool.

`SearchBackend` is the interface the routes depend on; the iteration-level
pool of issue 5 replaces `RequestWorkers` behind it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.engine.errors import EngineError
from app.engine.runner import SearchRunner
from app.engine.search import SearchJob, SearchResult
from app.metrics import Metrics

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """Every queue slot is taken; the caller should retry later (HTTP 503)."""


class ShuttingDownError(Exception):
    """The workers are stopping and accept no new search (HTTP 503)."""


class SearchBackend(Protocol):
    """What the HTTP layer needs from whatever runs searches on the devices."""

    def submit(self, model_key: str, job: SearchJob) -> asyncio.Future[SearchResult]:
        """Queue a search; must be called on the event loop. Raises QueueFullError or ShuttingDownError."""
        ...

    @property
    def alive(self) -> bool:
        """True while every device worker is running."""
        ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass
class _Ticket:
    """A queued search and the way back to the request that waits for it."""

    model_key: str
    job: SearchJob
    future: asyncio.Future[SearchResult]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


def _settle(future: asyncio.Future[SearchResult], result: SearchResult | None, error: BaseException | None) -> None:
    """Runs on the event loop; the request may have timed out and cancelled the future meanwhile."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


class RequestWorkers:
    """One thread per device, each running whole searches, fed from one bounded queue."""

    def __init__(
        self, workers: Sequence[tuple[str, Mapping[str, SearchRunner]]], queue_size: int, metrics: Metrics
    ) -> None:
        """`workers`: per worker thread, its device and model key (`name:version`) -> runner on that device.

        A list rather than a dict so one device may have several workers (e.g. two `cpu` workers).
        """
        self._queue: queue.Queue[_Ticket] = queue.Queue(maxsize=queue_size)
        self._metrics = metrics
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve, args=(device, runners), name=f"search-{index}-{device}", daemon=True)
            for index, (device, runners) in enumerate(workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return not self._stopping.is_set() and all(thread.is_alive() for thread in self._threads)

    def submit(self, model_key: str, job: SearchJob) -> asyncio.Future[SearchResult]:
        if self._stopping.is_set():
            raise ShuttingDownError("the server is shutting down")
        loop = asyncio.get_running_loop()
        ticket = _Ticket(model_key, job, loop.create_future(), loop)
        try:
            self._queue.put_nowait(ticket)
        except queue.Full:
            raise QueueFullError(f"all {self._queue.maxsize} queue places are taken") from None
        self._metrics.queue_depth.set(self._queue.qsize())
        return ticket.future

    def stop(self, timeout: float = 10.0) -> None:
        """Let running searches finish (up to `timeout`), fail the queued ones with ShuttingDownError."""
        self._stopping.set()
        while True:
            try:
                ticket = self._queue.get_nowait()
            except queue.Empty:
                break
            self._answer(ticket, None, ShuttingDownError("the server shut down before this search started"))
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._metrics.queue_depth.set(0)

    def _serve(self, device: str, runners: Mapping[str, SearchRunner]) -> None:
        while not self._stopping.is_set():
            try:
                ticket = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            self._metrics.queue_depth.set(self._queue.qsize())
            if ticket.future.cancelled():  # its request timed out or went away while it waited
                continue
            self._metrics.queue_wait.observe(time.perf_counter() - ticket.enqueued)
            self._run(device, runners[ticket.model_key], ticket)

    def _run(self, device: str, runner: SearchRunner, ticket: _Ticket) -> None:
        slots = ticket.job.params.restarts
        self._metrics.live_slots.labels(device=device).set(slots)
        try:
            (result,) = runner.run([ticket.job])
        except Exception as exc:  # answered to its request; the worker keeps serving the others
            if not isinstance(exc, EngineError):
                log.exception("search failed on %s for %s", device, ticket.model_key)
            self._answer(ticket, None, exc)
            return
        finally:
            self._metrics.live_slots.labels(device=device).set(0)
        # This worker sees a whole search, not its steps: one observation per search, of the mean step.
        self._metrics.slots_per_step.observe(slots)
        self._metrics.step_duration.labels(device=device).observe(result.seconds / max(result.iterations, 1))
        self._metrics.iterations_per_request.observe(result.iterations)
        self._answer(ticket, result, None)

    @staticmethod
    def _answer(ticket: _Ticket, result: SearchResult | None, error: BaseException | None) -> None:
        try:
            ticket.loop.call_soon_threadsafe(_settle, ticket.future, result, error)
        except RuntimeError:  # the loop closed: nobody is waiting any more
            log.debug("dropped a result: its event loop is closed")
