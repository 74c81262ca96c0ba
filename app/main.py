"""`create_app(settings)`: the FastAPI application and its lifespan.

Nothing heavy happens at import or in `create_app`; the lifespan loads every
model version onto every device, starts the device workers and the
postprocessing pool, and stops them after the server stops serving.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from PIL import Image
from prometheus_client import start_http_server

from app.api import complete, health, locate, models
from app.api.admission import BoundedExecutor, Door
from app.api.auth import TokenMiddleware
from app.api.deps import Services
from app.api.faces import OUTCOMES as FACE_OUTCOMES
from app.api.middleware import AdmissionMiddleware, RequestContextMiddleware, UploadLimitMiddleware
from app.api.problems import REASONS, install_problem_handlers
from app.config import Settings
from app.engine.precision import cuda_flags
from app.engine.precision import resolve as resolve_precision
from app.faces.locate import FaceLocator
from app.faces.refine import FaceFramer
from app.loading import load_runners
from app.metrics import Metrics
from app.pool import IterationPool
from app.reload import OUTCOMES, publish_model_info
from app.store import ModelStore
from app.threads import size_thread_pools
from app.web.routes import install_page
from training.checkpoint import LoadedModel

log = logging.getLogger(__name__)

# what a browser script may read of an answer from another origin
EXPOSED_HEADERS = (
    "X-Request-ID",
    "X-Model",
    "X-Init",
    "X-Iterations",
    "X-Search-Seconds",
    "X-Batch-Slots",
    "X-Total-Seconds",
    "Server-Timing",
    "Retry-After",
)

DESCRIPTION = """
Restores the damaged part of a photo by searching a DCGAN's latent space for the
image that agrees with the pixels that are still there (Yeh et al., CVPR 2017).

Send the photo and a mask (white = fill) or a photo whose transparent pixels mark
the hole to `POST /complete`; every known pixel comes back unchanged. Errors are
`application/problem+json` and say what to fix.
"""


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine() or "cpu"


def start_services(settings: Settings, metrics: Metrics, verified: Mapping[str, LoadedModel] | None = None) -> Services:
    """Load every model version onto every device and start the pool's worker per device (blocking, seconds).

    `verified`: what `ModelStore.verify` loaded, by version key; those versions are not read from disk again.
    """
    store = ModelStore.discover(settings.model_store, settings.default_model)
    size_thread_pools(settings.torch_threads)
    if any(device.startswith("cuda") for device in settings.devices):
        cuda_flags(settings.deterministic)
    # every padded step size warmed up here where the device asks for it, before /readyz can turn ready
    options = [settings.step_options(device) for device in settings.devices]
    per_device = load_runners(store.entries(), settings.devices, settings.precision, verified, options)
    for device in settings.devices:
        metrics.device_info.labels(device=device, name=_device_name(device)).set(1)
        log.info("%s steps searches in %s", device, resolve_precision(settings.precision, torch.device(device)))
    publish_model_info(metrics, store.entries(), [])
    backend = IterationPool(
        list(zip(settings.devices, per_device, strict=True)),
        metrics,
        settings.slots_per_device,
        settings.queue_size,
        timeout=settings.request_timeout_s,
    )
    backend.start()
    # decoding is bounded by the door (queue size), blending by the searches that can run at once
    backlog = settings.queue_size + settings.slots_per_device * len(settings.devices) + settings.postprocess_threads
    executor = BoundedExecutor(settings.postprocess_threads, backlog, thread_name_prefix="imgcomp-post")
    log.info("serving %s on %s", ", ".join(e.key for e in store.entries()), ", ".join(settings.devices))
    door = Door(backend, settings.queue_size, settings.admission_bytes, settings.admission_pixels)
    return Services(
        settings=settings,
        store=store,
        backend=backend,
        executor=executor,
        metrics=metrics,
        door=door,
        locator=FaceLocator(),
        framer=FaceFramer.discover(settings.model_store, settings.face_framer),
    )


def create_app(
    settings: Settings | None = None,
    verified: Mapping[str, LoadedModel] | None = None,
    *,
    metrics_server: bool = True,
) -> FastAPI:
    """A ready-to-serve app; `settings` default to the environment (`IMGCOMP_*`).

    `verified`: the models `serve` verified before starting (`ModelStore.verify`), which the first start-up puts
    on the devices instead of reading their files again; it is dropped then, so their CPU copies are freed.
    `metrics_server`: False in a supervisor's child, whose parent serves every child's metrics on the metrics port.
    """
    pending = dict(verified or {})
    settings = settings if settings is not None else Settings()
    metrics = Metrics()
    # every reason exported at 0 from the start: a counter's first increment is otherwise invisible to rate()
    for reason in REASONS:
        metrics.rejections.labels(reason=reason)
    for outcome in OUTCOMES:
        metrics.model_reloads.labels(outcome=outcome)
    for status in FACE_OUTCOMES:
        metrics.faces.labels(outcome=status)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Pillow's own guard as well as ours: a file decoded anywhere in this process refuses a bomb
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, settings.max_image_pixels
        services = await asyncio.to_thread(start_services, settings, metrics, pending)
        pending.clear()
        app.state.services = services
        scrape = None
        if settings.metrics_port is not None and metrics_server:
            scrape, _ = start_http_server(settings.metrics_port, addr=settings.host, registry=metrics.exposed)
            log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
        try:
            yield
        finally:
            if scrape is not None:
                scrape.shutdown()
                scrape.server_close()
            del app.state.services
            await asyncio.to_thread(services.stop)
            Image.MAX_IMAGE_PIXELS = pillow_limit

    docs = settings.docs_enabled
    app = FastAPI(
        title="Image completion",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_problem_handlers(app)
    app.add_middleware(
        AdmissionMiddleware, retry_after_s=settings.retry_after_s, upload_limit=settings.max_upload_bytes
    )
    app.add_middleware(
        UploadLimitMiddleware,
        limit=settings.max_upload_bytes,
        deadline_s=settings.upload_timeout_s,
        metrics=metrics,
    )
    # the token before the upload limits and the door: no queue place and no body read without it
    app.add_middleware(TokenMiddleware, settings=settings, metrics=metrics)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    if settings.cors_origins:  # outermost, so refusals (413, 503) carry the headers a browser needs to read them
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=list(EXPOSED_HEADERS),
        )
    routers = [complete.router(), locate.router, models.router, health.router]
    if settings.metrics_port is None:
        routers.append(health.metrics_router)
    for router in routers:
        app.include_router(router)
    install_page(app)
    return app
