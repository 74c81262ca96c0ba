"""A step that runs out of device memory: its searches go back to the queue and its model's slot cap on that device
is halved, until a step fits; a search that does not fit even alone fails. On the CPU, with a tiny model whose
batches raise the out-of-memory error above a size."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from app.engine import SearchRunner
from app.engine.kinds import Batch
from app.metrics import Metrics
from app.pool import IterationPool
from tests.pool.conftest import make_job, pixels

MODEL = "tiny:1"
LIMIT = 4  # live slots above which a step "runs out of memory"

ERRORS: dict[str, BaseException] = {
    "cuda": torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "memory-error": MemoryError(),
    "cpu-allocator": RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB (out of memory)"),
}


class SmallDeviceBatch:
    """A search batch on a device with room for LIMIT slots: a step above it raises `error`, changing nothing."""

    def __init__(self, inner: Batch, error: BaseException, sizes: list[int]) -> None:
        self.inner, self.error, self.sizes = inner, error, sizes

    @property
    def live_slots(self) -> int:
        return self.inner.live_slots

    def add(self, job: Any) -> int:
        return self.inner.add(job)

    def step(self) -> list[int]:
        self.sizes.append(self.inner.live_slots)
        if self.inner.live_slots > LIMIT:
            raise self.error
        return self.inner.step()

    def pop(self, key: int) -> Any:
        return self.inner.pop(key)

    def cancel(self, key: int) -> None:
        self.inner.cancel(key)


class SmallDevice:
    """The tiny runner, its batches on the small device."""

    def __init__(self, runner: SearchRunner, error: BaseException) -> None:
        self.runner, self.error = runner, error
        self.sizes: list[int] = []  # live slots of every step tried

    @property
    def has_encoder(self) -> bool:
        return self.runner.has_encoder

    def batch(self) -> SmallDeviceBatch:
        return SmallDeviceBatch(self.runner.batch(), self.error, self.sizes)

    def run(self, jobs: Sequence[Any]) -> Any:
        raise NotImplementedError


def _run(runner: Any, jobs: list[Any], budget: int = 16) -> tuple[list[Any], Metrics, IterationPool]:
    """Every job submitted at once (before the worker starts, so the first step holds them all); their answers."""
    metrics = Metrics()
    pool = IterationPool([("cpu", {MODEL: runner})], metrics, budget, 64)

    async def main() -> list[Any]:
        futures = [pool.submit(MODEL, job) for job in jobs]
        pool.start()
        # the wait only turns a lost answer into a failure instead of a hang
        return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 120)

    try:
        return asyncio.run(main()), metrics, pool
    finally:
        pool.stop()


def _sample(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"device": "cpu", "model": MODEL})


@pytest.mark.parametrize("kind", list(ERRORS))
def test_an_out_of_memory_step_lowers_the_cap_and_requeues_instead_of_failing(
    runner: SearchRunner, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = [make_job(index, iterations=6, restarts=2) for index in range(6)]
    small = SmallDevice(runner, ERRORS[kind])
    with caplog.at_level(logging.WARNING, logger="app.pool"):
        answers, metrics, pool = _run(small, jobs)
    failed = [answer for answer in answers if isinstance(answer, BaseException)]
    assert not failed, failed  # on the old pool every search of the batch failed with the error
    # 12 slots ran out, then 6 (under the cap of 6), then 3 searches' worth never could: caps 6, then 3
    assert small.sizes[:2] == [12, 6] and max(small.sizes[2:]) <= 3
    assert _sample(metrics, "imgcomp_out_of_memory_steps_total") == 2
    assert _sample(metrics, "imgcomp_slot_cap") == 3
    assert metrics.registry.get_sample_value("imgcomp_step_failures_total", {"device": "cpu"}) in (None, 0)
    assert "ran out of memory at 12 slots" in caplog.text and "at most 6 slots" in caplog.text
    # each answer is the one it gets on a device with room for all of them: a requeued search starts afresh
    roomy, _, _ = _run(runner, jobs)
    for answer, expected in zip(answers, roomy, strict=True):
        np.testing.assert_array_equal(pixels(answer.generated), pixels(expected.generated))
        assert answer.iterations == expected.iterations == 6


def test_a_search_that_does_not_fit_even_alone_fails_and_the_rest_run(runner: SearchRunner) -> None:
    small = SmallDevice(runner, ERRORS["cuda"])
    jobs = [make_job(0, iterations=4, restarts=6), make_job(1, iterations=4, restarts=2)]
    answers, metrics, pool = _run(small, jobs)
    assert isinstance(answers[0], torch.cuda.OutOfMemoryError)  # 6 restarts never fit in 4 slots
    assert answers[1].iterations == 4
    assert pool.waiting == 0
