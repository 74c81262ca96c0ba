"""The shared objects a running app owns, handed to routes as `Annotated` dependencies.

The lifespan builds one `Services` and stores it on `app.state`; routes never
reach for module globals, so tests can build as many apps as they like.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.api.admission import BoundedExecutor, Door
from app.config import Settings
from app.faces.locate import FaceLocator
from app.faces.refine import FaceFramer
from app.metrics import Metrics
from app.pool import SearchBackend
from app.store import ModelStore


@dataclass
class Services:
    """Everything a request may need, created at start-up and stopped at shutdown."""

    settings: Settings
    store: ModelStore
    backend: SearchBackend
    executor: BoundedExecutor  # decode / prepare / blend / encode, off the loop and off the device threads
    metrics: Metrics
    door: Door  # admits completions before their body is read
    locator: FaceLocator  # finds faces in photos (region=auto)
    framer: FaceFramer | None  # corrects a damaged face's framing (region=auto); None: landmarks alone
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)  # one model reload at a time

    def stop(self) -> None:
        self.backend.stop(self.settings.shutdown_grace_s)
        self.executor.shutdown(wait=True)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# the dependencies are coroutines only so that FastAPI calls them on the event loop: a plain function
# dependency runs in a worker thread, a hop (and a wait for the interpreter lock) per dependency per request


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_settings(request: Request) -> Settings:
    return services_of(request).settings


async def get_store(request: Request) -> ModelStore:
    return services_of(request).store


async def get_backend(request: Request) -> SearchBackend:
    return services_of(request).backend


async def get_executor(request: Request) -> BoundedExecutor:
    return services_of(request).executor


async def get_locator(request: Request) -> FaceLocator:
    return services_of(request).locator


async def get_framer(request: Request) -> FaceFramer | None:
    return services_of(request).framer


async def get_metrics(request: Request) -> Metrics:
    return services_of(request).metrics


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ModelStore, Depends(get_store)]
BackendDep = Annotated[SearchBackend, Depends(get_backend)]
ExecutorDep = Annotated[BoundedExecutor, Depends(get_executor)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
LocatorDep = Annotated[FaceLocator, Depends(get_locator)]
FramerDep = Annotated[FaceFramer | None, Depends(get_framer)]
