"""Fixtures for the service tests: settings on a tiny store, a real uvicorn on a free port, image helpers."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from app.bench.server import serving as running
from app.config import Settings
from app.engine.batch import SearchBatch
from tests.conftest import REPO, TINY
from training.checkpoint import save_checkpoint
from training.networks import Discriminator, Generator, recompute_batchnorm_stats

RESOLUTION = 32  # of the conftest's tiny models


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_env(store: Path, port: int, tree: Path = REPO, **settings: str) -> dict[str, str]:
    """Environment of a `python -m app serve` subprocess on a tiny store: no IMGCOMP_* leaks in from the shell.

    `tree` is the checkout whose `app` runs: this one, or an earlier commit's (tests/history.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCOMP_")}
    env |= {
        "IMGCOMP_MODEL_STORE": str(store),
        "IMGCOMP_DEFAULT_MODEL": "tiny",
        "IMGCOMP_DEVICES": "cpu",
        "IMGCOMP_PORT": str(port),
        "IMGCOMP_TORCH_THREADS": "1",  # tiny convolutions on a shared 2-core machine: threads only spin
        "IMGCOMP_METRICS_PORT": "public",  # /metrics beside the API, where `scrape` reads it (tests may override)
        "PYTHONPATH": str(tree),
    }
    return env | {f"IMGCOMP_{name.upper()}": value for name, value in settings.items()}


@contextmanager
def serve_subprocess(store: Path, tree: Path = REPO, **settings: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m app serve` on a free port, waited until ready; yields it and its URL, and kills it if still up."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        cwd=tree,
        env=serve_env(store, port, tree, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, server.communicate()[0].decode()
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server did not become ready within 60 s"
                time.sleep(0.1)
        yield server, url
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def raw_response(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """The status line, headers (lower-case names) and body (by Content-Length) of the first answer on a raw socket
    (socket.timeout if none comes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        body += chunk
    return status, headers, body


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; an IMGCOMP_* variable in the shell must not leak in."""
    for name in list(os.environ):
        if name.startswith("IMGCOMP_"):
            monkeypatch.delenv(name)


def test_settings(store: Path, **overrides: object) -> Settings:
    """Settings on a tiny store with small search budgets; keyword overrides per test."""
    values: dict[str, object] = {
        "model_store": store,
        "default_model": "tiny",
        "devices": "cpu",
        "default_iterations": 5,
        "default_restarts": 1,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_env(monkeypatch)


@pytest.fixture
def tiny_store(make_tiny_store: Callable[..., Path]) -> Path:
    return make_tiny_store(("tiny",))


@pytest.fixture
def make_settings(tiny_store: Path, clean_env: None) -> Callable[..., Settings]:
    """For tests that need a server of their own (queue size, timeouts, patched engine)."""
    return lambda **overrides: test_settings(tiny_store, **overrides)


def save_tiny_search(root: Path) -> Path:
    """A seeded, untrained `tiny/1` search model with eval-mode BatchNorm statistics; returns its folder."""
    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    recompute_batchnorm_stats(generator, samples=256, batch_size=64)
    card = {"dataset": {"name": "none (test)"}, "training": {"steps": 0}}
    return save_checkpoint(root, "tiny", "1", generator, discriminator.eval(), TINY, card)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny store per test module, so a module's tests can share one server."""
    root = tmp_path_factory.mktemp("store") / "model_store"
    save_tiny_search(root)
    return root


@contextmanager
def serving(store: Path, **overrides: object) -> Iterator[httpx.Client]:
    """An httpx client on a real server over `store`, with the environment cleared while it starts."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clear_env(monkeypatch)
        settings = test_settings(store, **overrides)
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def client(module_store: Path) -> Iterator[httpx.Client]:
    """A client on one real server shared by the module's tests (default test settings)."""
    with serving(module_store) as http:
        yield http


def scrape(http: httpx.Client, sample: str) -> float:
    """One sample's value from the live `/metrics`, named exactly as exported (labels included, e.g.
    `imgcomp_live_slots{device="cpu"}`); a sample that is not exported fails the test rather than reading 0."""
    for line in http.get("/metrics").text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    raise AssertionError(f"{sample} is not exported by /metrics")


def encode(image: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def mask_png(hole: np.ndarray) -> bytes:
    """The API's mask convention: white = fill."""
    return encode(hole.astype(np.uint8) * 255)


def center_hole(height: int, width: int) -> np.ndarray:
    hole = np.zeros((height, width), dtype=bool)
    hole[height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2] = True
    return hole


def damaged(image: np.ndarray, hole: np.ndarray, fill: int = 128) -> np.ndarray:
    """The upload as a damaged photo: the hole's pixels overwritten, so nothing can borrow them."""
    out = image.copy()
    out[hole] = fill
    return out


def good_request(http: httpx.Client, face: np.ndarray) -> httpx.Response:
    hole = center_hole(*face.shape[:2])
    return http.post(
        "/complete",
        files={"image": ("face.png", encode(damaged(face, hole)), "image/png"), "mask": ("m.png", mask_png(hole))},
        data={"iterations": "3"},
    )


class StepGate:
    """Holds the device worker in its first search step until released, so the queue fills deterministically.

    Patches `SearchBatch.step` for the servers this process runs in a thread (`running`, `serving`).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        original = SearchBatch.step

        def held(batch: SearchBatch) -> Any:
            self.entered.set()
            assert self.release.wait(120)  # released by the test; long only so a loaded CI machine cannot trip it
            return original(batch)

        monkeypatch.setattr(SearchBatch, "step", held)
