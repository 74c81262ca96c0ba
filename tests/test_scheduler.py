"""The scheduler's policy without torch or threads: FIFO admission, slot budget, retirement, deadlines, draining."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.scheduler import (
    Plan,
    QueueFullError,
    Scheduler,
    ShuttingDownError,
    SlotBudgetError,
    Status,
    Ticket,
)

REPO = Path(__file__).resolve().parents[1]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(workers: int = 1, budget: int = 4, queue: int = 8) -> tuple[Scheduler[str], Clock]:
    clock = Clock()
    return Scheduler(workers, budget, queue, clock=clock), clock


def jobs(tickets: list[Ticket[str]]) -> list[str]:
    return [ticket.job for ticket in tickets]


def test_imports_no_torch() -> None:
    """The policy must stay importable without the tensor library (a fresh interpreter, so no test preloads it)."""
    code = "import sys, app.scheduler; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_admits_in_arrival_order_up_to_the_slot_budget() -> None:
    scheduler, _ = make(budget=4)
    for name, slots in (("a", 2), ("b", 1), ("c", 2), ("d", 1)):
        scheduler.submit("m", name, slots)
    plan = scheduler.schedule(0)
    assert jobs(plan.admit) == ["a", "b"]  # c does not fit in the one slot left
    assert scheduler.waiting == 2
    assert all(ticket.status is Status.RUNNING and ticket.worker == 0 for ticket in plan.admit)


def test_a_large_head_is_not_overtaken() -> None:
    """Strict FIFO: d (1 slot) would fit, but c (2 slots) came first and waits for room."""
    scheduler, _ = make(budget=4)
    for name, slots in (("a", 3), ("c", 2), ("d", 1)):
        scheduler.submit("m", name, slots)
    assert jobs(scheduler.schedule(0).admit) == ["a"]
    assert jobs(scheduler.schedule(0).admit) == []


def test_finished_searches_free_their_slots_for_the_next() -> None:
    scheduler, _ = make(budget=2)
    for name, slots in (("a", 1), ("b", 1), ("c", 2)):
        scheduler.submit("m", name, slots)
    plan = scheduler.schedule(0)
    assert jobs(plan.admit) == ["a", "b"]
    scheduler.postprocess(plan, finished=[plan.admit[0]], failed=[plan.admit[1]])
    assert [t.status for t in plan.admit] == [Status.FINISHED, Status.FAILED]
    assert jobs(scheduler.schedule(0).admit) == ["c"]  # the whole budget: both slots came back


def test_each_worker_has_its_own_budget_and_shares_the_queue() -> None:
    scheduler, _ = make(workers=2, budget=2)
    for name in "abcde":
        scheduler.submit("m", name, 1)
    assert jobs(scheduler.schedule(0).admit) == ["a", "b"]
    assert jobs(scheduler.schedule(1).admit) == ["c", "d"]
    assert scheduler.waiting == 1


def test_full_queue_refuses_at_once() -> None:
    scheduler, _ = make(queue=2)
    scheduler.submit("m", "a", 1)
    scheduler.submit("m", "b", 1)
    with pytest.raises(QueueFullError):
        scheduler.submit("m", "c", 1)
    scheduler.schedule(0)  # both admitted: their queue places are free again
    scheduler.submit("m", "c", 1)


def test_a_search_larger_than_the_budget_is_refused() -> None:
    scheduler, _ = make(budget=4)
    with pytest.raises(SlotBudgetError):
        scheduler.submit("m", "huge", 5)


def test_cancel_a_waiting_search_removes_it_without_an_answer() -> None:
    scheduler, _ = make()
    ticket = scheduler.submit("m", "a", 1)
    scheduler.submit("m", "b", 1)
    scheduler.cancel(ticket)
    assert ticket.status is Status.CANCELLED and scheduler.waiting == 1
    plan = scheduler.schedule(0)
    assert jobs(plan.admit) == ["b"] and plan.retire == []


def test_cancel_a_running_search_retires_it_at_the_next_schedule() -> None:
    scheduler, _ = make(budget=2)
    running = scheduler.submit("m", "a", 2)
    scheduler.submit("m", "b", 2)
    scheduler.schedule(0)
    scheduler.cancel(running)
    assert running.status is Status.RUNNING  # the worker may be mid-step: it drops the slots itself
    plan = scheduler.schedule(0)
    assert plan.retire == [running] and running.status is Status.CANCELLED
    assert jobs(plan.admit) == ["b"]  # the freed slots go to the next search in the same step


def test_deadline_retires_waiting_and_running_searches() -> None:
    scheduler, clock = make(budget=1)
    running = scheduler.submit("m", "a", 1, timeout=5)
    waiting = scheduler.submit("m", "b", 1, timeout=3)
    patient = scheduler.submit("m", "c", 1)
    scheduler.schedule(0)
    clock.now += 2.9
    assert scheduler.schedule(0).retire == []
    clock.now += 0.1
    plan = scheduler.schedule(0)
    assert plan.retire == [waiting] and waiting.status is Status.EXPIRED
    clock.now += 2
    plan = scheduler.schedule(0)
    assert plan.retire == [running] and running.status is Status.EXPIRED
    assert plan.admit == [patient] and patient.deadline is None


def test_close_refuses_new_drains_accepted_then_refuses_after_grace() -> None:
    scheduler, clock = make(budget=1)
    first = scheduler.submit("m", "a", 1)
    queued = scheduler.submit("m", "b", 1)
    plan = scheduler.schedule(0)
    scheduler.close(grace=10)
    with pytest.raises(ShuttingDownError):
        scheduler.submit("m", "c", 1)
    assert not scheduler.drained(0)
    scheduler.postprocess(plan, finished=[first])
    assert jobs(scheduler.schedule(0).admit) == ["b"]  # accepted before the close: still served
    clock.now += 10
    plan = scheduler.schedule(0)
    assert plan.retire == [queued] and queued.status is Status.REFUSED
    assert scheduler.drained(0)


def test_plan_counts_running_searches() -> None:
    scheduler, _ = make(budget=3)
    for name in "abc":
        scheduler.submit("m", name, 1)
    plan: Plan[str] = scheduler.schedule(0)
    assert plan.running == 3 and plan.worker == 0


def test_requeued_searches_lead_the_queue_in_order_and_their_model_keeps_under_its_cap() -> None:
    scheduler, _ = make(budget=8)
    a, b, c = (scheduler.submit("m", name, 2) for name in "abc")
    other = scheduler.submit("n", "other", 2)
    plan = scheduler.schedule(0)
    assert jobs(plan.admit) == ["a", "b", "c", "other"]
    scheduler.requeue(0, "m", [a, b, c], cap=3)  # a step of m at 6 slots ran out of memory
    assert scheduler.cap(0, "m") == 3 and scheduler.cap(0, "n") == 8
    assert (a.status, a.worker) == (Status.WAITING, None)
    # a fits only if the requeued searches gave their 6 slots back; b would take m to 4 slots: FIFO waits behind it
    assert jobs(scheduler.schedule(0).admit) == ["a"]
    scheduler.postprocess(Plan(0), [a])
    assert jobs(scheduler.schedule(0).admit) == ["b"]
    scheduler.requeue(0, "m", [b], cap=8)  # a cap is only ever lowered
    assert scheduler.cap(0, "m") == 3
    scheduler.requeue(0, "m", [], cap=1)
    scheduler.submit("m", "big", 4)
    scheduler.postprocess(Plan(0), [], [other])
    assert jobs(scheduler.schedule(0).admit) == ["b"]  # alone, a search over its model's cap still runs
    scheduler.postprocess(Plan(0), [b])
    assert jobs(scheduler.schedule(0).admit) == ["c"]
    scheduler.postprocess(Plan(0), [c])
    assert jobs(scheduler.schedule(0).admit) == ["big"]
