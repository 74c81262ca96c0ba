"""The two baselines the pool is measured against, behind the same `submit` as the pool.

Request-level dynamic batching is what TorchServe and Triton do for models
without per-step state: wait up to `wait_s` for up to `max_requests` requests,
then run those whole searches together to the end while newcomers queue. With
`max_requests=1, wait_s=0` it is the one-request-at-a-time worker.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass

from app.engine.runner import SearchRunner
from app.engine.search import SearchJob, SearchResult
from app.metrics import Metrics
from app.pool import settle


@dataclass(eq=False)
class _Waiting:
    job: SearchJob
    future: asyncio.Future[SearchResult]
    loop: asyncio.AbstractEventLoop


class RequestBatcher:
    """One device thread that runs batches of whole searches (`SearchRunner.run`'s loop, stepped here
    so every step is counted in the same metrics as the pool's)."""

    def __init__(
        self, runner: SearchRunner, metrics: Metrics, max_requests: int, wait_s: float, device: str = "cpu"
    ) -> None:
        self._runner = runner
        self._metrics = metrics
        self._max_requests = max_requests
        self._wait_s = wait_s
        self._device = device
        self._queue: queue.Queue[_Waiting] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"batcher-{device}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return not self._stopping.is_set() and self._thread.is_alive()

    def submit(self, model_key: str, job: SearchJob) -> asyncio.Future[SearchResult]:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(job, loop.create_future(), loop)
        self._queue.put(waiting)
        return waiting.future

    def stop(self, timeout: float = 10.0) -> None:
        """Abandon the batch in flight (the bench has stopped listening) and end the thread."""
        self._stopping.set()
        self._thread.join(timeout)

    def _collect(self) -> list[_Waiting]:
        """The first waiting request, then whatever else arrives within `wait_s`, up to `max_requests`."""
        try:
            batch = [self._queue.get(timeout=0.05)]
        except queue.Empty:
            return []
        end = time.perf_counter() + self._wait_s
        while len(batch) < self._max_requests:
            try:
                batch.append(self._queue.get(timeout=max(0.0, end - time.perf_counter())))
            except queue.Empty:
                break
        return [waiting for waiting in batch if not waiting.future.cancelled()]

    def _serve(self) -> None:
        while not self._stopping.is_set():
            requests = self._collect()
            if not requests:
                continue
            batch = self._runner.batch()
            keys = [batch.add(waiting.job) for waiting in requests]
            while batch.live_slots and not self._stopping.is_set():
                slots, started = batch.live_slots, time.perf_counter()
                batch.step()
                self._metrics.slots_per_step.observe(slots)
                self._metrics.step_duration.labels(device=self._device).observe(time.perf_counter() - started)
            if self._stopping.is_set():
                return
            # like SearchRunner.run (and a TorchServe batch), every answer leaves when the whole batch ends
            for waiting, key in zip(requests, keys, strict=True):
                waiting.loop.call_soon_threadsafe(settle, waiting.future, batch.pop(key), None)
