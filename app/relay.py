"""A model reload on every device's process under `serve`'s supervisor, whichever child the request reached.

The child that answers `POST /v1/models/reload` with 200 sends SIGHUP to the supervisor, which passes SIGHUP
on to every child (that one included: its second rescan finds nothing new and loads nothing); a child reloads
on SIGHUP as the endpoint does, logging what it loaded. `docker compose kill -s HUP app` reloads them all too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import FrameType

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import Services
from app.api.models import reload_models
from app.api.problems import Problem

log = logging.getLogger(__name__)

RELOAD_PATH = "/v1/models/reload"


class ReloadRelay:
    """ASGI middleware: a reload request answered 200 also asks the supervisor to reload every child."""

    def __init__(self, app: ASGIApp, supervisor: int) -> None:
        self.app = app
        self.supervisor = supervisor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != RELOAD_PATH:
            await self.app(scope, receive, send)
            return
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, sending)
        if status == 200:
            os.kill(self.supervisor, signal.SIGHUP)


def reload_on_hangup(app: FastAPI) -> None:
    """From now on SIGHUP rescans the model store as `POST /v1/models/reload` does (before the models load: ignored)."""
    running: set[asyncio.Task[None]] = set()  # a task nothing references may be collected before it ends

    def on_signal(sig: int, frame: FrameType | None) -> None:
        services = getattr(app.state, "services", None)
        if services is None:
            log.warning("SIGHUP before the models loaded: ignored (this process's start-up read the store)")
            return
        loop = asyncio.get_running_loop()  # the handler runs on the main thread, inside uvicorn's loop
        loop.call_soon_threadsafe(lambda: _track(running, loop.create_task(_reload(services))))

    signal.signal(signal.SIGHUP, on_signal)


def _track(running: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    running.add(task)
    task.add_done_callback(running.discard)


async def _reload(services: Services) -> None:
    try:
        await reload_models(services)
    except Problem:
        pass  # reload_models logged why; the versions already loaded keep serving
