"""`python -m app serve` as the container runs it: a subprocess configured by IMGCOMP_* variables."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from tests.app.conftest import good_request
from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_subprocess_answers_and_stops_on_sigterm(make_tiny_store: Callable[..., Path], faces: np.ndarray) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCOMP_")}
    env |= {
        "IMGCOMP_MODEL_STORE": str(make_tiny_store(("tiny",))),
        "IMGCOMP_DEFAULT_MODEL": "tiny",
        "IMGCOMP_DEVICES": "cpu",
        "IMGCOMP_PORT": str(port),
        "IMGCOMP_LOG_LEVEL": "info",
        "IMGCOMP_TORCH_THREADS": "1",
        "PYTHONPATH": str(REPO),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, server.communicate()[0].decode()
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready within 60 s"
                time.sleep(0.2)
            assert good_request(http, faces[500]).status_code == 200
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status reports it
        assert server.wait(30) in (0, -signal.SIGTERM)
        log = server.communicate()[0].decode()
        assert "Application shutdown complete" in log and "Traceback" not in log, log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_serve_on_a_taken_port_fails_at_once_with_one_line(make_tiny_store: Callable[..., Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCOMP_")}
        env |= {
            "IMGCOMP_MODEL_STORE": str(make_tiny_store(("tiny",))),
            "IMGCOMP_DEFAULT_MODEL": "tiny",
            "IMGCOMP_DEVICES": "cpu",
            "IMGCOMP_PORT": str(port),
            "PYTHONPATH": str(REPO),
        }
        result = subprocess.run(
            [sys.executable, "-m", "app", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 2
    assert result.stderr.strip() == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stdout == ""
