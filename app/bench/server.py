"""The real service on a loopback port: in a thread for the bench's through-HTTP mode, or as its own process
for `bench --defaults` and the load scripts (whose memory and CPU are then the server's alone)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app
from app.serving import tcp_listener

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """uvicorn serving create_app(settings) on a free 127.0.0.1 port in a thread; yields the base URL.

    /metrics is served on that port too, whatever `metrics_port` says: the bench scrapes it there, and two
    loopback servers (or one beside `make serve`) must not both claim the metrics port.
    """
    settings = settings.model_copy(update={"metrics_port": None})
    listener = tcp_listener("127.0.0.1", 0)
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


def start_server(env: dict[str, str], cwd: Path = REPO) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m app serve` on a free loopback port with `env` (IMGCOMP_* variables of this shell left out), once
    it answers /readyz; returns the process and its base URL. The caller stops it (SIGTERM).

    `cwd`: the checkout whose `app` serves (another worktree runs another commit's code)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IMGCOMP_")}
    # /metrics beside the API: a second server on this machine (make serve) may hold the metrics port
    environment |= {"IMGCOMP_PORT": str(port), "IMGCOMP_HOST": "127.0.0.1", "IMGCOMP_LOG_LEVEL": "warning"}
    environment |= {"IMGCOMP_METRICS_PORT": "public", **env}
    server = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=cwd, env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        if server.poll() is not None:
            raise RuntimeError("the server exited while starting")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError("the server did not become ready in 180 s")
        time.sleep(0.2)


@contextmanager
def server_process(env: dict[str, str], cwd: Path = REPO) -> Iterator[tuple[str, int]]:
    """`start_server(env, cwd)` as a context: yields (base URL, pid) and stops the server (SIGTERM) on leaving."""
    server, url = start_server(env, cwd)
    try:
        yield url, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _children(pid: int) -> list[int]:
    """The live child processes of every thread of `pid`."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue  # a thread that ended meanwhile
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its live descendants (a supervisor's device children), read
    from /proc; NaN where there is no /proc (not Linux)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            # the fields after the command's closing parenthesis: utime and stime are the 12th and 13th
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            pending += _children(current)
        except OSError:
            if current == pid:
                return math.nan
            continue  # a child that exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
