"""The iteration-level pool: one thread per device steps every live search together.

Requests are batched per search step, not per request (as Orca and vLLM batch
per token): every loop of a device thread admits waiting searches into free
slots, runs one forward/backward per model over all of that model's live
slots, and answers the searches that ended. A long search never holds up a
short one, and the device never waits for a batch to fill. A one-pass model's
table (`app.engine.onepass`) answers every job it admitted in the next step, so
such a job holds its slot for one step and waits for at most the step in flight.

The policy (queue, budget, deadlines, draining) is `app.scheduler`'s; this
module only moves tensors (`_DeviceRunner`) and answers futures on their event
loop with `call_soon_threadsafe`. Decoding, blending and encoding stay in the
app's thread pool: a device thread only runs steps.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from app.engine.errors import EngineError
from app.engine.kinds import Batch, Job, Runner
from app.engine.search import SearchResult
from app.metrics import Metrics
from app.scheduler import DeadlineExceeded, Plan, Scheduler, ShuttingDownError, Status, Ticket
from app.store import UnknownModelError

log = logging.getLogger(__name__)

# an idle worker re-checks this often, so a queued search's deadline is noticed without a submit
_IDLE_WAIT_S = 0.05
# a device whose last this-many steps raised, the latest within the window, is reported not ready
_FAILING_AFTER = 3
_FAILING_WINDOW_S = 30.0
# a crashed worker loop restarts after this pause, doubling (up to the cap) while failures follow each other
_RESTART_PAUSE_S = (0.05, 5.0)


class WorkerCrashed(RuntimeError):
    """The device worker's loop raised outside a step; its running searches fail with this (HTTP 500)."""


@dataclass
class _Health:
    """Consecutive failed steps of one device, so readiness can turn false while it keeps failing."""

    failures: int = 0
    last_failure: float = 0.0

    def failed(self) -> None:
        self.failures += 1
        self.last_failure = time.monotonic()

    def failing(self) -> bool:
        return self.failures >= _FAILING_AFTER and time.monotonic() - self.last_failure < _FAILING_WINDOW_S


class SearchBackend(Protocol):
    """What the HTTP layer needs from whatever runs searches on the devices."""

    def submit(
        self, model_key: str, job: Job, timeout: float | None = None, on_admit: Callable[[], None] | None = None
    ) -> asyncio.Future[SearchResult]:
        """Queue a search; must be called on the event loop. Raises QueueFullError or ShuttingDownError.

        `on_admit` is called on the event loop once the search holds its slots, before its first step: never
        if it is not admitted, again if a step that ran out of memory requeued it.
        """
        ...

    @property
    def alive(self) -> bool:
        """True while every device worker is running and new searches are accepted."""
        ...

    @property
    def draining(self) -> bool:
        """True once shutdown has begun: accepted searches still run, new ones are refused."""
        ...

    @property
    def waiting(self) -> int:
        """Searches queued and not yet admitted to a device."""
        ...

    def start(self) -> None: ...

    def close(self, grace: float) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    @property
    def models(self) -> frozenset[str]:
        """The model keys `submit` accepts now."""
        ...

    @property
    def loaded(self) -> frozenset[str]:
        """Model keys with networks on some device: `models` plus retired ones whose searches still run."""
        ...

    def add_models(self, per_worker: Sequence[Mapping[str, Runner]]) -> None:
        """Serve more model versions: one mapping of new runners per worker, in worker order."""
        ...

    def retire_models(self, keys: Collection[str]) -> None:
        """Accept no new search of `keys`; each is unloaded once no search of it is left."""
        ...


class ModelUnloadedError(UnknownModelError):
    """The version a request resolved was unloaded by a reload before its search was queued."""


@dataclass(eq=False)
class _Request:
    """A search and the way back to the coroutine that awaits it."""

    job: Job
    future: asyncio.Future[SearchResult]
    loop: asyncio.AbstractEventLoop
    on_admit: Callable[[], None] | None = None
    batch_slots: int = 0  # the most live slots of a step it took part in (SearchResult.batch_slots)

    def admitted(self) -> None:
        """Device thread: the search holds its slots; tell the coroutine (it may start what overlaps the search)."""
        if self.on_admit is not None:
            self.on_loop("an admission notice", self.on_admit)

    def on_loop(self, what: str, callback: Callable[..., None], *args: object) -> None:
        """Any thread: `callback(*args)` on the request's event loop, dropped (and logged as `what`) once it closed."""
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed: nobody is waiting any more
            log.debug("dropped %s: its event loop is closed", what)


@dataclass
class StepOutput:
    """What one pass over a worker's batches did."""

    finished: list[tuple[Ticket[_Request], SearchResult]] = field(default_factory=list)
    failed: list[tuple[Ticket[_Request], BaseException]] = field(default_factory=list)
    steps: list[tuple[int, float]] = field(default_factory=list)  # (slots, seconds) of each model's step
    step_failures: int = 0  # models whose step raised
    # models whose step ran out of device memory: (model, slots it held, its searches), to requeue under a cap
    out_of_memory: list[tuple[str, int, list[Ticket[_Request]]]] = field(default_factory=list)


def out_of_memory(error: BaseException) -> bool:
    """A step that ran out of device memory: CUDA's own error, or on the CPU a MemoryError or an allocator's
    RuntimeError saying so."""
    if isinstance(error, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


class _DeviceRunner:
    """One worker's tensors: a slot table per model (a search's, or a one-pass model's that answers every job
    in one step) and which ticket owns which batch key."""

    def __init__(self, runners: Mapping[str, Runner]) -> None:
        self._runners = dict(runners)
        self._batches: dict[str, Batch] = {model: runner.batch() for model, runner in runners.items()}
        self._keys: dict[Ticket[_Request], int] = {}
        self._owners: dict[str, dict[int, Ticket[_Request]]] = {model: {} for model in runners}
        self._runners_lock = threading.Lock()  # `add` (a reload's thread) and `sync` (this worker) replace _runners

    @property
    def live_slots(self) -> int:
        return sum(batch.live_slots for batch in self._batches.values())

    @property
    def models(self) -> frozenset[str]:
        """The models this worker has networks of (retired ones until their last search ends)."""
        with self._runners_lock:
            return frozenset(self._runners)

    def add(self, runners: Mapping[str, Runner]) -> None:
        """Any thread: models this worker may admit from now on (their batches open at the first admission)."""
        with self._runners_lock:
            self._runners = {**self._runners, **runners}

    def fresh(self) -> _DeviceRunner:
        """The same networks (reloads included) and no searches: what a crashed worker restarts with."""
        with self._runners_lock:
            return _DeviceRunner(self._runners)

    def sync(self, unload: Callable[[str], bool]) -> None:
        """This worker's thread, before it schedules: drop the idle batches and runners of models `unload` names.

        Batches are only ever touched by their worker's thread, so a reload never races a step.
        """
        with self._runners_lock:
            idle = [model for model, batch in self._batches.items() if not batch.live_slots and unload(model)]
            for model in idle:
                del self._batches[model], self._owners[model], self._runners[model]

    def _batch(self, model: str) -> Batch:
        """The model's slot table, opened on this thread when the first search of an added model arrives."""
        if model not in self._batches:
            with self._runners_lock:
                self._batches[model], self._owners[model] = self._runners[model].batch(), {}
        return self._batches[model]

    def step(self, plan: Plan[_Request], out: StepOutput | None = None) -> StepOutput:
        """Drop the plan's retired searches, add its admitted ones, and step every model with live slots.

        What it decides goes into `out` as it goes (the caller's, if given), so the answers of a pass that
        raises halfway are not lost with it.
        """
        out = StepOutput() if out is None else out
        for ticket in plan.retire:
            key = self._keys.pop(ticket, None)
            if key is not None:
                del self._owners[ticket.model][key]
                self._batches[ticket.model].cancel(key)
        for ticket in plan.admit:
            try:
                key = self._batch(ticket.model).add(ticket.job.job)
            except Exception as exc:  # a job this model cannot run fails alone
                if not isinstance(exc, EngineError):
                    log.exception("admitting a search of %s failed", ticket.model)
                out.failed.append((ticket, exc))
                continue
            self._keys[ticket] = key
            self._owners[ticket.model][key] = ticket
            ticket.job.admitted()
        for model, batch in self._batches.items():
            if batch.live_slots:
                self._step_model(model, batch, out)
        return out

    def _step_model(self, model: str, batch: Batch, out: StepOutput) -> None:
        slots, started = batch.live_slots, time.perf_counter()
        for ticket in self._owners[model].values():
            ticket.job.batch_slots = max(ticket.job.batch_slots, slots)
        try:
            finished = batch.step()
        except Exception as exc:  # the batch's state is suspect: start it afresh without its searches
            owners = list(self._owners[model].values())
            for ticket in owners:
                del self._keys[ticket]
            self._owners[model].clear()
            self._batches[model] = self._runners[model].batch()
            if out_of_memory(exc) and len(owners) > 1:  # fewer at a time may fit: the pool requeues them
                out.out_of_memory.append((model, slots, owners))
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                return
            log.exception("a search step of %s failed", model)  # a search alone that does not fit fails too
            out.step_failures += 1
            out.failed += [(ticket, exc) for ticket in owners]
            return
        out.steps.append((slots, time.perf_counter() - started))
        for key in finished:
            ticket = self._owners[model].pop(key)
            del self._keys[ticket]
            out.finished.append((ticket, batch.pop(key)))


def settle(future: asyncio.Future[SearchResult], result: SearchResult | None, error: BaseException | None) -> None:
    """Runs on the event loop; the request may have given up on the future meanwhile."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)


def _labels(devices: Sequence[str]) -> list[str]:
    """Metric label per worker: the device, with `#n` on repeats (several `cpu` workers)."""
    seen: dict[str, int] = {}
    labels = []
    for device in devices:
        count = seen.get(device, 0)
        seen[device] = count + 1
        labels.append(device if count == 0 else f"{device}#{count}")
    return labels


class IterationPool:
    """The `SearchBackend` that batches searches per step: one worker thread per device entry."""

    def __init__(
        self,
        workers: Sequence[tuple[str, Mapping[str, Runner]]],
        metrics: Metrics,
        slot_budget: int,
        queue_size: int,
        timeout: float | None = None,
    ) -> None:
        """`workers`: per thread, its device and model key -> runner on it (a device may repeat).

        `slot_budget`: live slots (restarts) per worker; `timeout`: default seconds from submit to
        answer, after which a search is retired and fails with DeadlineExceeded.
        """
        self._metrics = metrics
        self._timeout = timeout
        self._models = set(workers[0][1]) if workers else set()
        assert workers and all(set(runners) == self._models for _, runners in workers), "every worker serves all"
        self._retired: set[str] = set()  # refused by submit, unloaded once nothing of theirs is outstanding
        self._outstanding: Counter[str] = Counter()  # per model: submitted and not yet answered
        self._scheduler: Scheduler[_Request] = Scheduler(len(workers), slot_budget, queue_size)
        self._devices = _labels([device for device, _ in workers])
        self._runners = [_DeviceRunner(runners) for _, runners in workers]
        self._health = [_Health() for _ in workers]
        # per worker, the pass under way: its plan and what its step decided so far, answered even if the loop
        # crashes before it answers them itself
        self._inflight: list[tuple[Plan[_Request], StepOutput] | None] = [None] * len(workers)
        self._threads = [
            threading.Thread(target=self._supervise, args=(index,), name=f"pool-{label}", daemon=True)
            for index, label in enumerate(self._devices)
        ]

    def start(self) -> None:
        for label in self._devices:
            self._metrics.live_slots.labels(device=label).set(0)
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        """False while draining, when a worker thread has ended, or while a device's steps keep raising."""
        if self._scheduler.closed or not all(thread.is_alive() for thread in self._threads):
            return False
        return not any(health.failing() for health in self._health)

    @property
    def draining(self) -> bool:
        return self._scheduler.closed

    @property
    def waiting(self) -> int:
        return self._scheduler.waiting

    def submit(
        self, model_key: str, job: Job, timeout: float | None = None, on_admit: Callable[[], None] | None = None
    ) -> asyncio.Future[SearchResult]:
        """Queue a search (call on the event loop); `timeout` overrides the pool's default deadline, and
        `on_admit` runs on the loop once the search holds its slots, before its first step.

        Raises QueueFullError or ShuttingDownError at once. Cancelling the returned future (the
        request timed out, the client left) frees the search's slots within a step.
        """
        if model_key not in self._models:
            raise ModelUnloadedError(f"model {model_key} was unloaded by a reload: send the request again")
        loop = asyncio.get_running_loop()
        request = _Request(job, loop.create_future(), loop, on_admit)
        limit = self._timeout if timeout is None else timeout
        ticket = self._scheduler.submit(model_key, request, job.params.slots, limit)
        self._metrics.queue_depth.set(self._scheduler.waiting)
        self._outstanding[model_key] += 1

        def forget(future: asyncio.Future[SearchResult]) -> None:
            self._outstanding[model_key] -= 1
            if future.cancelled():
                self._scheduler.cancel(ticket)

        request.future.add_done_callback(forget)
        return request.future

    @property
    def models(self) -> frozenset[str]:
        return frozenset(self._models)

    @property
    def loaded(self) -> frozenset[str]:
        return frozenset().union(*(runner.models for runner in self._runners))

    def add_models(self, per_worker: Sequence[Mapping[str, Runner]]) -> None:
        """Serve more versions (call on the event loop): every worker has them before `submit` accepts them."""
        added = set(per_worker[0]) if per_worker else set()
        self._retired -= added  # first: a worker must not unload a version that is coming back
        for runner, runners in zip(self._runners, per_worker, strict=True):
            runner.add(runners)
        self._models |= added

    def retire_models(self, keys: Collection[str]) -> None:
        """Refuse new searches of `keys` (call on the event loop); accepted ones finish on them first."""
        self._models -= set(keys)
        self._retired |= set(keys)

    def _unloadable(self, model: str) -> bool:
        return model in self._retired and self._outstanding[model] <= 0

    def close(self, grace: float) -> None:
        """Start draining without waiting: new searches get ShuttingDownError, `alive` turns false."""
        self._scheduler.close(grace)

    def stop(self, timeout: float = 10.0) -> None:
        """Refuse new searches; let accepted ones (queued too) finish for `timeout` s, then refuse the rest."""
        self._scheduler.close(timeout)
        deadline = time.monotonic() + timeout + 5.0  # a step in flight when the grace ends still completes
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._metrics.queue_depth.set(0)

    def _supervise(self, index: int) -> None:
        """The worker thread: runs the loop, and restarts it after an unexpected error instead of dying.

        The searches it held fail with WorkerCrashed (500), its tensors start afresh, and the restart
        counts as a failure, so a loop that keeps crashing turns readiness false.
        """
        while True:
            try:
                self._serve(index)
                return
            except Exception:
                device = self._devices[index]
                log.exception("the worker of %s crashed: its searches fail and it restarts", device)
                self._metrics.worker_restarts.labels(device=device).inc()
                self._health[index].failed()
                self._runners[index] = self._runners[index].fresh()
                inflight, self._inflight[index] = self._inflight[index], None
                if inflight is not None:  # first: a search the pass had finished gets its result, not the crash
                    self._answer_decided(*inflight)
                for ticket in self._scheduler.fail_running(index):
                    self._answer(ticket, None, WorkerCrashed(f"the worker of {device} crashed during this search"))
                self._metrics.live_slots.labels(device=device).set(0)
                first, cap = _RESTART_PAUSE_S
                time.sleep(min(first * 2 ** min(self._health[index].failures - 1, 16), cap))

    def _serve(self, index: int) -> None:
        runner, device = self._runners[index], self._devices[index]
        while not self._scheduler.drained(index):
            runner.sync(self._unloadable)
            plan = self._scheduler.schedule(index)
            out = StepOutput()
            self._inflight[index] = (plan, out)
            # admitted searches leave the queue now, not when the (possibly long) step ends
            self._metrics.queue_depth.set(self._scheduler.waiting)
            runner.step(plan, out)
            self._scheduler.postprocess(plan, [t for t, _ in out.finished], [t for t, _ in out.failed])
            for model, slots, tickets in out.out_of_memory:
                self._requeue(index, model, slots, tickets)
            if out.step_failures:
                self._health[index].failed()
                self._metrics.step_failures.labels(device=device).inc(out.step_failures)
            elif out.steps:
                self._health[index].failures = 0
            self._record(device, plan, out, runner.live_slots)
            self._answer_decided(plan, out)
            self._inflight[index] = None
            if not out.steps:
                self._scheduler.wait(index, _IDLE_WAIT_S)
        self._metrics.live_slots.labels(device=device).set(0)

    def _requeue(self, index: int, model: str, slots: int, tickets: list[Ticket[_Request]]) -> None:
        """A step of `model` ran out of memory at `slots`: its searches start again, at most half as many slots."""
        device = self._devices[index]
        for ticket in tickets:
            ticket.job.batch_slots = 0  # the step that ran out of memory did not happen
        self._scheduler.requeue(index, model, tickets, max(1, slots // 2))
        cap = self._scheduler.cap(index, model)
        self._metrics.out_of_memory.labels(device=device, model=model).inc()
        self._metrics.slot_cap.labels(device=device, model=model).set(cap)
        log.warning(
            "a step of %s on %s ran out of memory at %d slots: its %d searches are queued again and it may hold "
            "at most %d slots there from now on",
            model,
            device,
            slots,
            len(tickets),
            cap,
        )

    def _answer_decided(self, plan: Plan[_Request], out: StepOutput) -> None:
        """Answer every search a pass decided: retired by its plan, finished or failed by its step.

        Answering twice is harmless (`settle` keeps the first), so the crash path may repeat what the loop sent.
        """
        for ticket in plan.retire:
            if ticket.status is Status.EXPIRED:
                self._answer(ticket, None, DeadlineExceeded("the search did not finish before its deadline"))
            elif ticket.status is Status.REFUSED:
                self._answer(ticket, None, ShuttingDownError("the server shut down before this search finished"))
        for ticket, result in out.finished:
            self._answer(ticket, result, None)
        for ticket, error in out.failed:
            self._answer(ticket, None, error)

    def _record(self, device: str, plan: Plan[_Request], out: StepOutput, live: int) -> None:
        metrics = self._metrics
        for ticket in plan.admit:
            assert ticket.admitted is not None
            metrics.queue_wait.observe(ticket.admitted - ticket.enqueued)
        for slots, seconds in out.steps:
            metrics.slots_per_step.observe(slots)
            metrics.step_duration.labels(device=device).observe(seconds)
        for ticket, result in out.finished:
            metrics.iterations_per_request.labels(init=ticket.job.job.params.start).observe(result.iterations)
        metrics.live_slots.labels(device=device).set(live)
        metrics.queue_depth.set(self._scheduler.waiting)

    @staticmethod
    def _answer(ticket: Ticket[_Request], result: SearchResult | None, error: BaseException | None) -> None:
        request = ticket.job
        if result is not None:
            result.batch_slots = request.batch_slots
        request.on_loop("an answer", settle, request.future, result, error)
