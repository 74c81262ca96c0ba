"""Load is shed at the door: a completion the queue cannot take is refused before its body is read.

Decoding a 25-megapixel upload costs more CPU and memory than answering 503, so the
queue's free places are counted against the requests already on their way to it
(reading, decoding, preparing), not only those that reached it. Everything here
runs on the event loop, so plain integers need no lock.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from app.pool import SearchBackend
from app.scheduler import QueueFullError, ShuttingDownError


class Pass:
    """One admitted request's claim on a queue place until its search is queued (or it fails first)."""

    def __init__(self, door: Door) -> None:
        self._door = door
        self._held = True

    def release(self) -> None:
        """Idempotent: the route releases it once the search is queued, the door again when the request ends."""
        if self._held:
            self._held = False
            self._door.arriving -= 1


class Door:
    """Admits a completion only while queued searches plus those on their way leave a queue place free."""

    def __init__(self, backend: SearchBackend, queue_size: int) -> None:
        self._backend = backend
        self._queue_size = queue_size
        self.arriving = 0

    def admit(self) -> Pass:
        """A pass, or QueueFullError / ShuttingDownError (503 with Retry-After) before any work is done."""
        if self._backend.draining:
            raise ShuttingDownError("the server is shutting down")
        if self._backend.waiting + self.arriving >= self._queue_size:
            raise QueueFullError(f"all {self._queue_size} queue places are taken")
        self.arriving += 1
        return Pass(self)


class BoundedExecutor(ThreadPoolExecutor):
    """A thread pool whose backlog is bounded: past `max_pending` unfinished tasks, `submit` raises QueueFullError.

    The door keeps decode work under the queue size and only running searches need blending, so the bound
    is a backstop against a path that forgets the door, not the everyday limit.
    """

    def __init__(self, workers: int, max_pending: int, thread_name_prefix: str = "") -> None:
        super().__init__(workers, thread_name_prefix=thread_name_prefix)
        self.max_pending = max_pending
        self.pending = 0  # submitted and not yet finished: the event loop adds, worker threads subtract
        self._pending_lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._pending_lock:
            if self.pending >= self.max_pending:
                raise QueueFullError(f"all {self.max_pending} places of the post-processing queue are taken")
            self.pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            self._done(None)
            raise
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any] | None) -> None:
        with self._pending_lock:
            self.pending -= 1
