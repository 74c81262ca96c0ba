"""Liveness, readiness and the Prometheus scrape endpoint (on the public port unless it has its own)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import MetricsDep
from app.api.problems import Problem
from app.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])
# apart, so the app can leave /metrics off the public port when it has a port of its own
metrics_router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process answers (liveness)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Models are loaded and every device worker runs and is not failing (readiness)")
async def readyz(request: Request) -> dict[str, object]:
    services = getattr(request.app.state, "services", None)
    if services is None:
        raise Problem("not-ready", "models are still loading: retry shortly")
    if services.backend.draining:
        raise Problem("shutting-down", "this replica is shutting down: send new work to another")
    if not services.backend.alive:
        raise Problem(
            "not-ready",
            "a device keeps failing its search steps or its worker has stopped: send work to another replica "
            "(imgcomp_step_failures_total and the log name the device)",
        )
    return {"status": "ready", "models": [entry.key for entry in services.store.entries()]}


@metrics_router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response)
async def metrics(registry: MetricsDep) -> Response:
    return Response(registry.render(), media_type=CONTENT_TYPE)
