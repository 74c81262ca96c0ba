"""The request workers without HTTP: answers come back on the loop, a full queue refuses, stop fails the queued."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest
import torch

from app.engine.search import SearchJob, SearchParams, SearchResult
from app.metrics import Metrics
from app.worker import QueueFullError, RequestWorkers, ShuttingDownError


class FakeRunner:
    """Answers each job with its seed as the loss, after the gate opens; records the thread it ran on."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.threads: list[str] = []

    def run(self, jobs: Sequence[SearchJob]) -> list[SearchResult]:
        assert self.gate.wait(10)
        self.threads.append(threading.current_thread().name)
        return [SearchResult(job.target, float(job.params.seed), job.params.iterations, 0.01) for job in jobs]


def _job(seed: int) -> SearchJob:
    hole = torch.zeros(8, 8, dtype=torch.bool)
    hole[2:6, 2:6] = True
    return SearchJob(torch.zeros(3, 8, 8), hole, SearchParams(iterations=3, restarts=1, seed=seed))


def _workers(runner: FakeRunner, devices: int = 1, queue_size: int = 4) -> RequestWorkers:
    return RequestWorkers([("cpu", {"m:1": runner})] * devices, queue_size, Metrics())  # type: ignore[dict-item]


def test_results_reach_their_requests() -> None:
    runner = FakeRunner()
    runner.gate.set()
    workers = _workers(runner, devices=2, queue_size=8)
    workers.start()

    async def main() -> list[float]:
        results = await asyncio.gather(*(workers.submit("m:1", _job(seed)) for seed in range(6)))
        return [result.loss for result in results]

    try:
        assert asyncio.run(main()) == [0, 1, 2, 3, 4, 5]
        assert workers.alive
        assert set(runner.threads) <= {"search-0-cpu", "search-1-cpu"}
    finally:
        workers.stop()
    assert not workers.alive


def test_full_queue_refuses_and_stop_fails_the_queued() -> None:
    runner = FakeRunner()
    workers = _workers(runner, queue_size=2)
    workers.start()

    async def main() -> None:
        running = workers.submit("m:1", _job(0))
        while workers._queue.qsize():  # the worker has taken the first job and waits at the gate
            await asyncio.sleep(0.01)
        queued = [workers.submit("m:1", _job(seed)) for seed in (1, 2)]
        with pytest.raises(QueueFullError):
            workers.submit("m:1", _job(3))
        stopping = asyncio.get_running_loop().run_in_executor(None, workers.stop)
        await asyncio.sleep(0.2)
        runner.gate.set()
        await stopping
        assert (await running).loss == 0  # the running search finishes
        for future in queued:
            with pytest.raises(ShuttingDownError):
                await future
        with pytest.raises(ShuttingDownError):
            workers.submit("m:1", _job(4))

    asyncio.run(main())
