"""`python -m app serve` as the container runs it: a subprocess configured by IMGCOMP_* variables."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from tests.app.conftest import free_port, good_request, serve_env, serve_subprocess
from tests.conftest import REPO


def test_serve_subprocess_answers_and_stops_on_sigterm(make_tiny_store: Callable[..., Path], faces: np.ndarray) -> None:
    with serve_subprocess(make_tiny_store(("tiny",)), log_level="info") as (server, url):
        with httpx.Client(base_url=url, timeout=30) as http:
            assert good_request(http, faces[500]).status_code == 200
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status reports it
        assert server.wait(30) in (0, -signal.SIGTERM)
        log = server.communicate()[0].decode()
        assert "Application shutdown complete" in log and "Traceback" not in log, log


def test_serve_on_a_taken_port_fails_at_once_with_one_line(make_tiny_store: Callable[..., Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = serve_env(make_tiny_store(("tiny",)), port)
        result = subprocess.run(
            [sys.executable, "-m", "app", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 2
    assert result.stderr.strip() == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stdout == ""


def test_a_broken_encoder_file_stops_serve_with_one_line_naming_it(make_tiny_store: Callable[..., Path]) -> None:
    import torch

    from tests.conftest import TINY
    from training.checkpoint import save_with_encoder
    from training.networks import Encoder, EncoderConfig

    store = make_tiny_store(("tiny",))
    torch.manual_seed(0)
    version = save_with_encoder(store / "tiny" / "1", "2", Encoder(TINY, EncoderConfig(width=8, groups=4)), {})
    weights = version / "encoder.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])  # truncated, as an interrupted copy leaves it
    env = serve_env(store, free_port())
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"cannot serve {store}: {weights} does not match the sha256 in model.json: the file was altered or corrupted"
    )


def test_a_start_up_that_fails_returns_false_not_a_clean_stop(clean_env: None) -> None:
    """The lifespan failing (a device that cannot load or warm up its models) is not a served-and-stopped run:
    `serve` and each supervisor child turn it into exit status 3, not 0."""
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    from app.config import Settings
    from app.serving import serve_app

    @asynccontextmanager
    async def failing(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("warm-up ran out of device memory")
        yield

    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    assert serve_app(listener, FastAPI(lifespan=failing), Settings(devices="cpu")) is False
