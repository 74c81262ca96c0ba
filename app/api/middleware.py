"""Pure ASGI middleware: request ids and completion metrics, the upload's size and time limits, and the door.

Pure ASGI rather than `BaseHTTPMiddleware`, so streaming bodies are not
buffered and the size limit applies while bytes arrive, before any parsing.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.problems import MEDIA_TYPE, problem_body
from app.metrics import Metrics
from app.scheduler import QueueFullError, ShuttingDownError

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
COMPLETE_PATH = "/complete"
FACES_PATH = "/v1/faces"
# the routes that decode an upload: each passes the door (its bytes and pixels weighed) before its body is read
ADMITTED_PATHS = frozenset({COMPLETE_PATH, FACES_PATH})


class UploadTooLarge(HTTPException):
    """A body without Content-Length that grew past the limit while it streamed in."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit:,} bytes: send a smaller image or mask")


class UploadTooSlow(HTTPException):
    """A body still arriving when its deadline passed: it would hold its queue place (see the door) meanwhile."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(
            408,
            f"the request body did not arrive within {deadline_s:g} s: send it faster (a smaller image) "
            "or ask the operators to raise IMGCOMP_UPLOAD_TIMEOUT_S",
            headers={"Connection": "close"},
        )


class RequestContextMiddleware:
    """Gives every request an id (the client's `X-Request-ID` if sane) and times `POST /complete`.

    Timing here rather than in the route also counts requests refused before the route runs
    (form validation, size limit), labelled with the model once the route has resolved it.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get("x-request-id", "")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["path"] == COMPLETE_PATH and scope["method"] == "POST":
                model = state.get("model", "none")
                self.metrics.requests.labels(model=model, status=str(status)).inc()
                self.metrics.request_duration.labels(model=model).observe(time.perf_counter() - started)


class UploadLimitMiddleware:
    """Bounds a body's size and its arrival time.

    Over `limit` bytes: 413 at once when Content-Length says so, else while it streams. Still arriving
    `deadline_s` after the request began: 408, so a client that trickles its upload cannot hold a queue
    place (taken before the body is read) for longer than that.
    """

    def __init__(self, app: ASGIApp, limit: int, deadline_s: float, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.deadline_s = deadline_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            self.metrics.rejections.labels(reason="upload-too-large").inc()
            detail = (
                f"the request body is {int(declared):,} bytes, over the {self.limit:,} byte limit: send a smaller file"
            )
            body = problem_body("upload-too-large", detail, request_id=scope.get("state", {}).get("request_id"))
            await JSONResponse(body, status_code=413, media_type=MEDIA_TYPE)(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        received = 0
        arriving = True

        async def bounded_receive() -> Message:
            nonlocal received, arriving
            if not arriving:  # the body is in: later receives wait for a disconnect, which has no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise UploadTooSlow(self.deadline_s) from None
            received += len(message.get("body", b""))
            if received > self.limit:
                raise UploadTooLarge(self.limit)
            arriving = message["type"] == "http.request" and message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)


class AdmissionMiddleware:
    """`POST /complete` and `POST /v1/faces` pass the door (`app.api.admission`) before their bodies are read, or
    get 503 at once.

    The pass is held in the request's state until the route has queued the search, and given back
    here when the request ends, whatever happened in between.
    """

    def __init__(self, app: ASGIApp, retry_after_s: int, upload_limit: int = 0) -> None:
        self.app = app
        self.retry_after_s = retry_after_s
        self.upload_limit = upload_limit  # what a body without Content-Length may still grow to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = getattr(scope["app"].state, "services", None) if scope["type"] == "http" else None
        if services is None or scope["path"] not in ADMITTED_PATHS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        declared = Headers(scope=scope).get("content-length", "")
        try:
            admitted = services.door.admit(int(declared) if declared.isdigit() else self.upload_limit)
        except (QueueFullError, ShuttingDownError) as refused:
            reason = "queue-full" if isinstance(refused, QueueFullError) else "shutting-down"
            advice = "retry after the Retry-After seconds" if reason == "queue-full" else "retry on another replica"
            services.metrics.rejections.labels(reason=reason).inc()
            body = problem_body(reason, f"{refused}: {advice}", request_id=state.get("request_id"))
            headers = {"Retry-After": str(self.retry_after_s)}
            await JSONResponse(body, status_code=503, media_type=MEDIA_TYPE, headers=headers)(scope, receive, send)
            return
        state["admission"] = admitted
        try:
            await self.app(scope, receive, send)
        finally:
            admitted.close()
