"""The real service on a loopback port, for the bench's through-HTTP mode."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.config import Settings
from app.main import create_app


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """uvicorn serving create_app(settings) on a free 127.0.0.1 port in a thread; yields the base URL.

    /metrics is served on that port too, whatever `metrics_port` says: the bench scrapes it there, and two
    loopback servers (or one beside `make serve`) must not both claim the metrics port.
    """
    settings = settings.model_copy(update={"metrics_port": None})
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start: see its log above")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        listener.close()
