"""The iteration-level pool on tiny searches: invariance, exactly-once answers, deadlines, cancels, draining."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest

from app.engine import SearchRunner
from app.engine.errors import EngineError
from app.metrics import Metrics
from app.pool import IterationPool, ModelUnloadedError
from app.scheduler import DeadlineExceeded, QueueFullError, ShuttingDownError
from tests.pool.conftest import make_job, pixels

MODEL = "tiny:1"


def make_pool(
    runner: SearchRunner, workers: int = 1, budget: int = 64, queue: int = 64, timeout: float | None = None
) -> tuple[IterationPool, Metrics]:
    metrics = Metrics()
    pool = IterationPool([("cpu", {MODEL: runner})] * workers, metrics, budget, queue, timeout)
    return pool, metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value; one the registry does not export fails the test instead of reading as 0."""
    value = metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


async def _the_whole_budget_runs(pool: IterationPool, budget: int = 64) -> None:
    """A search as large as the slot budget is admitted and answered: no slot of an earlier search is still held."""
    # the wait only turns a held slot into a failure instead of a hang
    result = await asyncio.wait_for(pool.submit(MODEL, make_job(99, iterations=1, restarts=budget)), 30)
    assert result.iterations == 1


async def until(condition: object, timeout: float = 20.0) -> None:
    """Poll `condition()` on the loop (the pool's answers arrive through it) until true."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def test_a_request_alone_equals_it_among_fifteen_others(runner: SearchRunner) -> None:
    """Others differ in image, mask, seed, restarts and budget, and arrive before and after it."""
    pool, _ = make_pool(runner)
    pool.start()

    async def main() -> tuple[np.ndarray, np.ndarray, int, int]:
        alone = await pool.submit(MODEL, make_job(0))
        others = [make_job(i, iterations=10 + 7 * i, restarts=1 + i % 3) for i in range(1, 16)]
        early = [pool.submit(MODEL, job) for job in others[:8]]
        await asyncio.sleep(0.05)  # the table is already stepping when the request joins
        mixed = pool.submit(MODEL, make_job(0))
        late = [pool.submit(MODEL, job) for job in others[8:]]
        among = await mixed
        await asyncio.gather(*early, *late)
        return pixels(alone.generated), pixels(among.generated), alone.iterations, among.iterations

    try:
        alone, among, alone_iterations, among_iterations = asyncio.run(main())
    finally:
        pool.stop()
    assert alone_iterations == among_iterations == 40
    np.testing.assert_array_equal(alone, among)  # bit for bit: app.engine.lanes


def test_two_workers_answer_every_request_exactly_once(runner: SearchRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    answers: Counter[int] = Counter()
    original = IterationPool._answer

    def counting(ticket, result, error):  # type: ignore[no-untyped-def]
        answers[ticket.job.job.params.seed] += 1
        original(ticket, result, error)

    monkeypatch.setattr(IterationPool, "_answer", staticmethod(counting))
    pool, metrics = make_pool(runner, workers=2, budget=6)
    pool.start()
    jobs = [make_job(i, iterations=5 + i, restarts=1 + i % 2) for i in range(24)]

    async def main() -> list[int]:
        results = await asyncio.gather(*(pool.submit(MODEL, job) for job in jobs))
        return [result.iterations for result in results]

    try:
        iterations = asyncio.run(main())
    finally:
        pool.stop()
    assert iterations == [5 + i for i in range(24)]  # each answer is its own request's search
    assert answers == Counter(range(24)) and set(answers.values()) == {1}
    for device in ("cpu", "cpu#1"):  # both threads stepped
        assert sample(metrics, "imgcomp_step_duration_seconds_count", device=device) > 0
    assert sample(metrics, "imgcomp_slots_per_step_count") == sum(
        sample(metrics, "imgcomp_step_duration_seconds_count", device=d) for d in ("cpu", "cpu#1")
    )


def test_deadline_fails_the_future_and_frees_the_slots(runner: SearchRunner) -> None:
    pool, metrics = make_pool(runner, timeout=0.3)
    pool.start()

    async def main() -> None:
        doomed = pool.submit(MODEL, make_job(0, iterations=100_000))
        quick = pool.submit(MODEL, make_job(1, iterations=5), timeout=30)  # a per-request timeout wins
        assert (await quick).iterations == 5
        with pytest.raises(DeadlineExceeded):
            await doomed
        await until(lambda: sample(metrics, "imgcomp_live_slots", device="cpu") == 0)

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def test_a_cancelled_request_frees_its_slots_within_a_step_or_two(runner: SearchRunner) -> None:
    pool, metrics = make_pool(runner)
    pool.start()

    async def main() -> None:
        future = pool.submit(MODEL, make_job(0, iterations=100_000, restarts=3))
        await until(lambda: sample(metrics, "imgcomp_live_slots", device="cpu") == 3)
        steps = sample(metrics, "imgcomp_slots_per_step_count")
        future.cancel()  # what a request that timed out or lost its client does
        await until(lambda: sample(metrics, "imgcomp_live_slots", device="cpu") == 0)
        assert sample(metrics, "imgcomp_slots_per_step_count") - steps <= 2
        await _the_whole_budget_runs(pool)

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def test_on_admit_runs_on_the_loop_once_the_search_holds_its_slots(runner: SearchRunner) -> None:
    """What a request overlaps with its search starts on this notice: not while the search waits for slots,
    before its answer, once; a search that cannot be admitted never sends it."""
    pool, _ = make_pool(runner, budget=2)
    pool.start()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        notices: list[tuple[str, bool, bool]] = []
        first = pool.submit(MODEL, make_job(0, iterations=60))  # holds both slots
        waiting: asyncio.Future[Any] | None = None

        def second_admitted() -> None:
            assert asyncio.get_running_loop() is loop
            assert waiting is not None
            notices.append(("second", first.done(), waiting.done()))

        waiting = pool.submit(MODEL, make_job(1, iterations=5), on_admit=second_admitted)
        misfit = make_job(2)
        misfit = type(misfit)(misfit.target[:, :4], misfit.hole, misfit.params)  # the wrong shape: refused at admission
        refused = pool.submit(MODEL, misfit, on_admit=lambda: notices.append(("misfit", True, True)))
        await asyncio.gather(first, waiting)
        with pytest.raises(EngineError):
            await refused
        assert notices == [("second", True, False)]  # after the first freed the slots, before its own answer

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def test_full_queue_refuses_and_the_pool_keeps_serving(runner: SearchRunner) -> None:
    pool, _ = make_pool(runner, budget=2, queue=2)
    pool.start()

    async def main() -> None:
        running = pool.submit(MODEL, make_job(0, iterations=200))
        await until(lambda: pool.waiting == 0)
        queued = [pool.submit(MODEL, make_job(i, iterations=5)) for i in (1, 2)]
        with pytest.raises(QueueFullError):
            pool.submit(MODEL, make_job(3))
        await asyncio.gather(running, *queued)
        assert (await pool.submit(MODEL, make_job(4, iterations=5))).iterations == 5

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def test_stop_drains_accepted_searches_and_refuses_new_ones(runner: SearchRunner) -> None:
    pool, _ = make_pool(runner, budget=2)
    pool.start()

    async def main() -> None:
        accepted = [pool.submit(MODEL, make_job(i, iterations=30)) for i in range(4)]  # two wait for slots
        endless = pool.submit(MODEL, make_job(9, iterations=100_000, restarts=1))
        await asyncio.get_running_loop().run_in_executor(None, pool.stop, 3.0)
        assert not pool.alive
        assert [result.iterations for result in await asyncio.gather(*accepted)] == [30] * 4
        with pytest.raises(ShuttingDownError):
            await endless  # still running when the grace period ended
        with pytest.raises(ShuttingDownError):
            pool.submit(MODEL, make_job(5))

    asyncio.run(main())


def test_added_models_serve_on_every_worker_and_retired_ones_unload_once_idle(runner: SearchRunner) -> None:
    """A reload's half in the pool: add a version to two workers, retire the old one with searches in flight."""
    pool, _ = make_pool(runner, workers=2)
    pool.start()
    new = "tiny:2"

    async def main() -> None:
        running = [pool.submit(MODEL, make_job(i, iterations=1000)) for i in range(4)]
        await asyncio.sleep(0.05)
        pool.add_models([{new: runner}, {new: runner}])
        pool.retire_models([MODEL])
        assert pool.models == {new} and pool.loaded == {MODEL, new}
        with pytest.raises(ModelUnloadedError, match="unloaded by a reload"):
            pool.submit(MODEL, make_job(9))
        answers = await asyncio.gather(*running, *(pool.submit(new, make_job(i)) for i in range(4)))
        assert len(answers) == 8
        await until(lambda: pool.loaded == {new})

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def _crash_once_after(monkeypatch: pytest.MonkeyPatch, decided: str) -> list[str]:
    """The worker loop raises once, outside any step, right after a pass that `decided` something (its plan's
    `retire` or its step's `finished`) and before the loop answers it; returns the crashes so far."""
    crashes: list[str] = []
    original = IterationPool._record

    def record(pool: IterationPool, device: str, plan: Any, out: Any, live: int) -> None:
        original(pool, device, plan, out, live)
        if not crashes and getattr(plan if decided == "retire" else out, decided):
            crashes.append(decided)
            raise RuntimeError(f"injected: the loop crashed after a pass with {decided} searches")

    monkeypatch.setattr(IterationPool, "_record", record)
    return crashes


def test_a_search_finished_in_the_pass_that_crashed_is_answered_with_its_result(
    runner: SearchRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = _crash_once_after(monkeypatch, "finished")
    pool, metrics = make_pool(runner)
    pool.start()

    async def main() -> None:
        # the wait is only there so a lost answer fails the test instead of hanging it
        result = await asyncio.wait_for(pool.submit(MODEL, make_job(0, iterations=5)), 30)
        assert result.iterations == 5
        assert crashes == ["finished"] and sample(metrics, "imgcomp_worker_restarts_total", device="cpu") == 1
        assert (await asyncio.wait_for(pool.submit(MODEL, make_job(1, iterations=5)), 30)).iterations == 5

    try:
        asyncio.run(main())
    finally:
        pool.stop()


def test_a_search_retired_in_the_pass_that_crashed_gets_its_deadline_answer(
    runner: SearchRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = _crash_once_after(monkeypatch, "retire")
    pool, _ = make_pool(runner)
    pool.start()

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            await asyncio.wait_for(pool.submit(MODEL, make_job(0, iterations=100_000), timeout=0.3), 30)
        assert crashes == ["retire"]
        await _the_whole_budget_runs(pool)

    try:
        asyncio.run(main())
    finally:
        pool.stop()
