"""Which searches run where: the plain-Python half of the iteration-level pool.

A search waits in one FIFO queue shared by every device worker and is admitted
into a worker's slot table when its slots (one per restart) fit that worker's
budget; it leaves when it finishes, its request goes away, its deadline
passes, or the pool shuts down past its grace period. Each worker thread calls

    plan = scheduler.schedule(worker)      # admit, and retire what must leave
    out = runner.step(plan)                # the tensors: add, drop, one step
    scheduler.postprocess(plan, finished, failed)

so every policy lives here, testable without torch or threads, and the runner
only moves tensors. One condition variable guards the state because the event
loop (submit, cancel) and every worker thread (schedule, postprocess) share it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Job = TypeVar("Job")


class QueueFullError(Exception):
    """Every queue place is taken; the caller should retry later (HTTP 503 with Retry-After)."""


class ShuttingDownError(Exception):
    """The pool is stopping: it accepts no new search, or its grace period ran out (HTTP 503)."""


class DeadlineExceeded(Exception):
    """The search did not finish before its request's deadline and was retired (HTTP 504)."""


class SlotBudgetError(ValueError):
    """A search needs more slots than any worker has; it could never be admitted."""


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # the runner raised on it
    CANCELLED = "cancelled"  # nobody waits for it any more (client gone, request timed out)
    EXPIRED = "expired"  # past its deadline: answered with DeadlineExceeded
    REFUSED = "refused"  # still unfinished when the shutdown grace ran out: answered with ShuttingDownError


LEFT = frozenset({Status.CANCELLED, Status.EXPIRED, Status.REFUSED})


@dataclass(eq=False)
class Ticket(Generic[Job]):
    """One search's place in the pool; identity is the ticket itself (two equal jobs are two searches)."""

    model: str
    job: Job
    slots: int  # rows it occupies while running: one per restart
    deadline: float | None  # on the scheduler's clock; None = no deadline
    enqueued: float
    status: Status = Status.WAITING
    worker: int | None = None
    admitted: float | None = None
    cancel_requested: bool = False


@dataclass
class Plan(Generic[Job]):
    """What one worker must do before its next step."""

    worker: int
    admit: list[Ticket[Job]] = field(default_factory=list)  # new: add their slots
    retire: list[Ticket[Job]] = field(default_factory=list)  # left unfinished (see LEFT); drop any slots they hold
    running: int = 0  # searches on this worker after admission


class Scheduler(Generic[Job]):
    """A bounded FIFO queue, per-worker running sets under a slot budget, deadlines and draining."""

    def __init__(
        self,
        workers: int,
        slot_budget: int,
        queue_size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert workers >= 1 and slot_budget >= 1 and queue_size >= 1
        self.slot_budget = slot_budget
        self.queue_size = queue_size
        self._clock = clock
        self._waiting: deque[Ticket[Job]] = deque()
        self._running: list[list[Ticket[Job]]] = [[] for _ in range(workers)]
        self._used = [0] * workers
        # per worker, models whose step ran out of device memory: the most slots they may hold there from then on
        self._caps: list[dict[str, int]] = [{} for _ in range(workers)]
        self._model_used: list[Counter[str]] = [Counter() for _ in range(workers)]
        self._closed = False
        self._grace_end: float | None = None
        self._changed = threading.Condition()

    # --- called on the event loop -------------------------------------------------------------

    def submit(self, model: str, job: Job, slots: int, timeout: float | None = None) -> Ticket[Job]:
        """Queue a search; refuse at once when closed, full, or too large ever to be admitted."""
        if slots > self.slot_budget:
            raise SlotBudgetError(f"a search of {slots} slots exceeds the {self.slot_budget}-slot budget per device")
        with self._changed:
            if self._closed:
                raise ShuttingDownError("the server is shutting down")
            if len(self._waiting) >= self.queue_size:
                raise QueueFullError(f"all {self.queue_size} queue places are taken")
            now = self._clock()
            ticket = Ticket(model, job, slots, None if timeout is None else now + timeout, now)
            self._waiting.append(ticket)
            self._changed.notify_all()
            return ticket

    def cancel(self, ticket: Ticket[Job]) -> None:
        """Nobody waits for this search any more: a waiting one leaves now, a running one at its next step."""
        with self._changed:
            if ticket.status is Status.WAITING:
                self._waiting.remove(ticket)
                ticket.status = Status.CANCELLED
            elif ticket.status is Status.RUNNING:
                ticket.cancel_requested = True
                self._changed.notify_all()

    def close(self, grace: float) -> None:
        """Accept nothing new; what was accepted may still run for `grace` seconds, then is refused.

        Only the first call starts the grace period, so a later `stop` cannot extend a drain under way.
        """
        with self._changed:
            if not self._closed:
                self._closed = True
                self._grace_end = self._clock() + grace
            self._changed.notify_all()

    # --- called on worker threads -------------------------------------------------------------

    def schedule(self, worker: int) -> Plan[Job]:
        """Retire what must leave this worker (and expired waiters), then admit FIFO into its free slots."""
        with self._changed:
            now = self._clock()
            plan: Plan[Job] = Plan(worker)
            out_of_grace = self._grace_end is not None and now >= self._grace_end
            for ticket in list(self._waiting):
                status = self._leaving(ticket, now, out_of_grace)
                if status is not None:
                    self._waiting.remove(ticket)
                    ticket.status = status
                    plan.retire.append(ticket)
            for ticket in list(self._running[worker]):
                status = self._leaving(ticket, now, out_of_grace)
                if status is not None:
                    self._release(ticket, status)
                    plan.retire.append(ticket)
            # strict FIFO: a large search at the head is not overtaken, so it cannot starve
            while self._waiting and self._fits(worker, self._waiting[0]):
                ticket = self._waiting.popleft()
                ticket.status, ticket.worker, ticket.admitted = Status.RUNNING, worker, now
                self._running[worker].append(ticket)
                self._used[worker] += ticket.slots
                self._model_used[worker][ticket.model] += ticket.slots
                plan.admit.append(ticket)
            plan.running = len(self._running[worker])
            return plan

    def postprocess(self, plan: Plan[Job], finished: Iterable[Ticket[Job]], failed: Iterable[Ticket[Job]] = ()) -> None:
        """Free the slots of searches that ended in the step; their answers are the pool's to send."""
        with self._changed:
            for ticket in finished:
                self._release(ticket, Status.FINISHED)
            for ticket in failed:
                self._release(ticket, Status.FAILED)
            self._changed.notify_all()

    def requeue(self, worker: int, model: str, tickets: Iterable[Ticket[Job]], cap: int) -> None:
        """Searches of `model` whose step ran out of memory: back to the head of the queue (in their order,
        keeping their deadlines), and the model held to at most `cap` slots on this worker from now on (never
        raised again; a search larger than the cap still runs there alone)."""
        with self._changed:
            back = list(tickets)
            for ticket in back:
                self._release(ticket, Status.WAITING)
                ticket.worker = None
            self._waiting.extendleft(reversed(back))
            self._caps[worker][model] = min(cap, self._caps[worker].get(model, cap))
            self._changed.notify_all()

    def cap(self, worker: int, model: str) -> int:
        """The most slots `model` may hold on `worker`: the budget, unless its steps ran out of memory there."""
        with self._changed:
            return self._caps[worker].get(model, self.slot_budget)

    def fail_running(self, worker: int) -> list[Ticket[Job]]:
        """Every search running on a worker whose loop crashed: released as failed, for the pool to answer."""
        with self._changed:
            failed = list(self._running[worker])
            for ticket in failed:
                self._release(ticket, Status.FAILED)
            self._changed.notify_all()
            return failed

    def wait(self, worker: int, timeout: float) -> None:
        """Block an idle worker until something may have changed for it (or `timeout`, for deadlines)."""
        with self._changed:
            if not self._waiting and not self._running[worker] and not self._closed:
                self._changed.wait(timeout)

    def drained(self, worker: int) -> bool:
        """Closed, and nothing left that this worker could run: its thread may end."""
        with self._changed:
            return self._closed and not self._waiting and not self._running[worker]

    # --- read-only views ----------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    @property
    def closed(self) -> bool:
        return self._closed

    # --- internals (lock held) ----------------------------------------------------------------

    @staticmethod
    def _leaving(ticket: Ticket[Job], now: float, out_of_grace: bool) -> Status | None:
        if ticket.cancel_requested:
            return Status.CANCELLED
        if ticket.deadline is not None and now >= ticket.deadline:
            return Status.EXPIRED
        if out_of_grace:
            return Status.REFUSED
        return None

    def _fits(self, worker: int, ticket: Ticket[Job]) -> bool:
        """Room for it in the worker's budget, and under its model's cap there (if alone, even over the cap)."""
        if ticket.slots > self.slot_budget - self._used[worker]:
            return False
        cap, used = self._caps[worker].get(ticket.model), self._model_used[worker][ticket.model]
        return cap is None or used == 0 or used + ticket.slots <= cap

    def _release(self, ticket: Ticket[Job], status: Status) -> None:
        assert ticket.status is Status.RUNNING and ticket.worker is not None, ticket
        self._running[ticket.worker].remove(ticket)
        self._used[ticket.worker] -= ticket.slots
        self._model_used[ticket.worker][ticket.model] -= ticket.slots
        ticket.status = status
