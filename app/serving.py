"""uvicorn on a socket bound before any model loaded: `python -m app serve` alone, or each child of its supervisor.

Binding first (in `serve`) makes a taken port one line and exit 2, and lets a supervisor's children share the
socket it bound once.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from types import FrameType
from typing import TYPE_CHECKING

from app.config import Settings

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

# the exit status of a start-up that failed on the devices (loading or warming up the models), uvicorn's own:
# unlike 2 (settings or a store no restart can fix), a supervisor restarts such a child up to its limit
STARTUP_FAILED = 3
STARTUP_FAILED_LINE = (
    "cannot serve: start-up failed on the devices (loading or warming up the models); the log above says why"
)


def configure_logging(settings: Settings, prefix: str = "") -> None:
    """One line per record; `prefix` names a supervisor's child (its device), so their lines can be told apart."""
    logging.basicConfig(
        level=settings.log_level.upper(), format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s"
    )


def tcp_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (not yet listening) whose connections send every write at once.

    asyncio turns Nagle's algorithm off only on sockets that say they are TCP (`proto` IPPROTO_TCP), and a socket
    made with the default `proto` 0 does not: an answer's body then waited for the client's delayed ACK of its
    headers, 40 ms on every request of a kept-alive connection (a client session, a load balancer's pool).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener


def serve_app(listener: socket.socket, app: FastAPI, settings: Settings) -> bool:
    """Serve `app` on `listener` until SIGTERM (drained) or SIGINT; returns once uvicorn has stopped, False when
    it never started because the lifespan failed (uvicorn has logged why).

    On SIGTERM uvicorn stops accepting, lets in-flight requests finish for the grace period, then the lifespan
    stops the pool (which gives anything still accepted the same grace).
    """
    import uvicorn

    config = uvicorn.Config(
        app,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(math.ceil(settings.shutdown_grace_s)),
        limit_concurrency=settings.limit_concurrency,
    )
    server = draining_server(config, app, settings)
    try:
        server.run(sockets=[listener])
    except SystemExit:  # recent uvicorn exits 3 itself when the lifespan fails; older ones return
        if server.started:
            raise
    return bool(server.started)


def draining_server(config: uvicorn.Config, app: FastAPI, settings: Settings) -> uvicorn.Server:
    """uvicorn, but SIGTERM first turns readyz and new completions to 503 for `drain_notice_s`.

    Only then does uvicorn close the listener, so a load balancer polling readyz takes the replica
    out before its connections are refused. A second signal exits at once.
    """
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            services = getattr(app.state, "services", None)
            if services is None or services.backend.draining or settings.drain_notice_s == 0:
                super().handle_exit(sig, frame)
                return
            services.backend.close(settings.shutdown_grace_s)
            logging.getLogger(__name__).info("draining: readyz answers 503 for %.1f s", settings.drain_notice_s)
            threading.Timer(settings.drain_notice_s, super().handle_exit, (sig, frame)).start()

    return DrainingServer(config)
