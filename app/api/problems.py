"""RFC 9457 problem+json answers, and the one map from domain errors to HTTP statuses.

Each layer raises its own named error (upload, store, engine, worker); only
this module knows their status codes. Details are written for the caller and
say what to change; unexpected exceptions get a generic 500 that names the
request id, never `str(exc)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.api.deps import Services
from app.api.uploads import UploadError
from app.engine.errors import EngineError, MaskError
from app.scheduler import QueueFullError, ShuttingDownError
from app.store import UnknownModelError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:imgcomp:problem:"

# reason -> (status, title); the reason is also the `imgcomp_rejections_total` label
REASONS: dict[str, tuple[int, str]] = {
    "not-an-image": (415, "Not a supported image"),
    "truncated-image": (422, "Truncated or corrupt image"),
    "animated-image": (422, "Animated image"),
    "bad-metadata": (422, "Unreadable image metadata"),
    "image-too-large": (413, "Image has too many pixels"),
    "upload-too-large": (413, "Upload too large"),
    "upload-too-slow": (408, "Upload too slow"),
    "missing-mask": (422, "No mask"),
    "mask-size-mismatch": (422, "Mask size differs from the image"),
    "bad-mask": (422, "Unusable mask"),
    "unknown-model": (422, "Unknown model"),
    "model-refused": (409, "Model version refused"),
    "invalid-parameter": (422, "Invalid parameter"),
    "malformed-body": (400, "Malformed request body"),
    "unauthorized": (401, "Missing or wrong API token"),
    "forbidden": (403, "Forbidden"),
    "queue-full": (503, "Server busy"),
    "shutting-down": (503, "Server shutting down"),
    "timeout": (504, "Search timed out"),
    "client-gone": (499, "Client closed the request"),
    "not-ready": (503, "Not ready"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "internal-error": (500, "Internal server error"),
}
_HTTP_REASONS = {
    400: "malformed-body",
    404: "not-found",
    405: "method-not-allowed",
    408: "upload-too-slow",
    413: "upload-too-large",
}


class Problem(Exception):
    """An answer the HTTP layer decided on; `reason` picks its status and title from REASONS."""

    def __init__(
        self,
        reason: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        assert reason in REASONS, reason
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @property
    def status(self) -> int:
        return REASONS[self.reason][0]


def problem_body(reason: str, detail: str, instance: str | None = None, **extra: Any) -> dict[str, Any]:
    """The problem+json document: RFC 9457 members plus our extension members."""
    status, title = REASONS[reason]
    body: dict[str, Any] = {"type": TYPE_PREFIX + reason, "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return {**body, **extra}


def problem_example(reason: str, detail: str) -> dict[str, Any]:
    """An OpenAPI `responses` entry: the problem+json document of `reason` as its example."""
    return {"content": {MEDIA_TYPE: {"example": problem_body(reason, detail)}}}


# what any route that reads an upload may answer before its own work, for its OpenAPI `responses`
UPLOAD_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: problem_example(
        "malformed-body",
        "the body is not valid multipart/form-data: send each field as a form part (curl -F name=value)",
    ),
    401: problem_example("unauthorized", "send the server's API token as `Authorization: Bearer <token>`"),
    408: problem_example("upload-too-slow", "the request body did not arrive within 60 s: send it faster"),
    413: problem_example("upload-too-large", "the request body is 31,457,280 bytes, over the 20,000,000 byte limit"),
    415: problem_example("not-an-image", "the image is not a PNG, JPEG or WebP image"),
    422: problem_example("mask-size-mismatch", "the mask is 32x32 but the image is 64x64: send a mask of its size"),
}


def problem_response(problem: Problem, request_id: str | None = None) -> JSONResponse:
    extra = {**problem.extra, **({"request_id": request_id} if request_id else {})}
    return JSONResponse(
        problem_body(problem.reason, problem.detail, **extra),
        status_code=problem.status,
        headers=problem.headers,
        media_type=MEDIA_TYPE,
    )


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _count_rejection(services: Services | None, request: Request, reason: str) -> None:
    """Only completions count: a failed readiness probe or a stray 404 is not a refused request."""
    if services is not None and request.url.path == "/complete":
        services.metrics.rejections.labels(reason=reason).inc()


def _as_problem(exc: Exception, request: Request) -> Problem:
    """Domain errors to problems; anything not named here is a server fault."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, UploadError):
        return Problem(exc.reason, str(exc))
    if isinstance(exc, MaskError):
        return Problem("bad-mask", str(exc))
    if isinstance(exc, EngineError):
        return Problem("invalid-parameter", str(exc))
    if isinstance(exc, UnknownModelError):
        return Problem("unknown-model", str(exc))
    if isinstance(exc, QueueFullError):
        return Problem("queue-full", f"{exc}: retry after the Retry-After seconds")
    if isinstance(exc, ShuttingDownError):
        return Problem("shutting-down", f"{exc}: retry on another replica")
    if isinstance(exc, RequestValidationError):
        return _validation_problem(exc)
    if isinstance(exc, HTTPException):
        return _http_problem(exc, request)
    return Problem("internal-error", "the server failed on this request: report its request_id to the operators")


def _http_problem(exc: HTTPException, request: Request) -> Problem:
    """Starlette's routing errors, with a detail that points somewhere useful."""
    reason = _HTTP_REASONS.get(exc.status_code, "invalid-parameter")
    docs = bool(request.app.docs_url)  # pointed to only where this server serves them
    if reason == "not-found":
        detail = f"there is nothing at {request.url.path}" + (": the endpoints are listed at /docs" if docs else "")
    elif reason == "method-not-allowed":
        allowed = (exc.headers or {}).get("Allow", "another method")
        detail = f"{request.method} is not accepted on {request.url.path}: use {allowed}" + (
            " (see /docs)" if docs else ""
        )
    elif reason == "malformed-body":
        detail = "the body is not valid multipart/form-data: send each field as a form part (curl -F name=value)"
    else:
        detail = str(exc.detail)
    return Problem(reason, detail, headers=exc.headers)


def _validation_problem(exc: RequestValidationError) -> Problem:
    """FastAPI's field errors as one readable detail plus a list; input values are not echoed back."""
    errors = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"] if part not in ("body", "query", "header"))
        message = "is required" if error["type"] == "missing" else error["msg"]
        errors.append({"field": field, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem("invalid-parameter", f"fix these form fields: {detail}", extra={"errors": errors})


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    problem = _as_problem(exc, request)
    if problem.reason == "internal-error":
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    services: Services | None = getattr(request.app.state, "services", None)
    # a 503 says when to come back: to this replica when its queue drains, to another when it shuts down
    if problem.status == 503 and services is not None:
        problem.headers.setdefault("Retry-After", str(services.settings.retry_after_s))
    _count_rejection(services, request, problem.reason)
    return problem_response(problem, _request_id(request))


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the service can raise answers in problem+json."""
    for error in (
        Problem,
        UploadError,
        EngineError,
        UnknownModelError,
        QueueFullError,
        ShuttingDownError,
        RequestValidationError,
        HTTPException,
        Exception,
    ):
        app.add_exception_handler(error, _handle)
