"""Load is shed at the door: a completion the queue cannot take is refused before its body is read.

Decoding a 25-megapixel upload costs more CPU and memory than answering 503, so the
queue's free places are counted against the requests already on their way to it
(reading, decoding, preparing), not only those that reached it. What admitted requests
hold until they end is weighed too: their bodies' bytes (before the body is read) and their
uploads' pixels (from the image headers, before decoding), each against a budget. Everything
here runs on the event loop, so plain integers need no lock.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from app.pool import SearchBackend
from app.scheduler import QueueFullError, ShuttingDownError


class Pass:
    """One admitted request's claim on a queue place until its search is queued (or it fails first), and on
    its share of the byte and pixel budgets until it ends."""

    def __init__(self, door: Door, body_bytes: int) -> None:
        self._door = door
        self._held = True
        self._bytes = body_bytes
        self._pixels = 0

    def release(self) -> None:
        """Idempotent: the route releases it once the search is queued, the door again when the request ends."""
        if self._held:
            self._held = False
            self._door.arriving -= 1

    def claim_pixels(self, pixels: int) -> None:
        """The upload's pixels, read from its headers before decoding; QueueFullError (503) past the budget."""
        door = self._door
        if door.pixels_held and door.pixels_held + pixels > door.pixel_budget:
            raise QueueFullError(
                f"the uploads being restored hold {door.pixels_held:,} of the server's {door.pixel_budget:,} pixels "
                f"and this one has {pixels:,}"
            )
        door.pixels_held += pixels
        self._pixels += pixels

    def close(self) -> None:
        """The request ended: its queue place, bytes and pixels go back (idempotent)."""
        self.release()
        self._door.bytes_held -= self._bytes
        self._door.pixels_held -= self._pixels
        self._bytes = self._pixels = 0


class Door:
    """Admits a completion only while queued searches plus those on their way leave a queue place free."""

    def __init__(
        self, backend: SearchBackend, queue_size: int, byte_budget: int = 2**62, pixel_budget: int = 2**62
    ) -> None:
        self._backend = backend
        self._queue_size = queue_size
        self.byte_budget = byte_budget
        self.pixel_budget = pixel_budget
        self.arriving = 0
        self.bytes_held = 0  # bodies of the admitted requests that have not ended
        self.pixels_held = 0  # their uploads' pixels, once claimed

    def admit(self, body_bytes: int = 0) -> Pass:
        """A pass, or QueueFullError / ShuttingDownError (503 with Retry-After) before any work is done.

        `body_bytes`: what the request's body will hold (its Content-Length, or the upload limit); a request
        alone is admitted whatever it weighs."""
        if self._backend.draining:
            raise ShuttingDownError("the server is shutting down")
        if self._backend.waiting + self.arriving >= self._queue_size:
            raise QueueFullError(f"all {self._queue_size} queue places are taken")
        if self.bytes_held and self.bytes_held + body_bytes > self.byte_budget:
            raise QueueFullError(
                f"the uploads in progress hold {self.bytes_held:,} of the server's {self.byte_budget:,} bytes "
                f"and this one declares {body_bytes:,}"
            )
        self.arriving += 1
        self.bytes_held += body_bytes
        return Pass(self, body_bytes)


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
