"""The pool behind the real service: per-request deadlines, a client that leaves, SIGTERM draining."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.engine.batch import SearchBatch
from tests.app.conftest import (
    center_hole,
    damaged,
    encode,
    good_request,
    mask_png,
    scrape,
    serve_subprocess,
    serving,
)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started


def _files(face: np.ndarray) -> dict[str, tuple[str, bytes]]:
    hole = center_hole(*face.shape[:2])
    return {"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))}


@pytest.fixture
def long_searches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Search steps that take a few milliseconds: with the server's patience (below) searches end only by their
    budget."""
    original = SearchBatch.step

    def slow(batch: SearchBatch) -> list[int]:
        time.sleep(0.01)
        return original(batch)

    monkeypatch.setattr(SearchBatch, "step", slow)


@pytest.fixture
def server(make_tiny_store: Callable[..., Path], long_searches: None) -> Iterator[httpx.Client]:
    with serving(make_tiny_store(("tiny",)), request_timeout_s=60, search_patience=100_000) as http:
        yield http


def test_searches_run_their_whole_budget(server: httpx.Client, faces: np.ndarray) -> None:
    """The server's IMGCOMP_SEARCH_PATIENCE reaches the route's searches: no plateau stop, so the tests below
    (a 2000-iteration search that must still be running) do not depend on when a search would plateau."""
    response = server.post("/complete", files=_files(faces[405]), data={"iterations": "300", "init": "random"})
    assert response.status_code == 200, response.text
    assert response.headers["X-Iterations"] == "300"


def test_per_request_timeout_answers_504_from_the_pool_and_frees_the_slots(
    server: httpx.Client, faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.api.complete._STUCK_STEP_SLACK_S", 120.0)  # the route's backstop far away
    started = time.monotonic()
    response = server.post("/complete", files=_files(faces[400]), data={"iterations": "2000", "timeout": "0.5"})
    assert response.status_code == 504 and response.json()["type"].endswith(":timeout")
    assert time.monotonic() - started < 60  # so the answer came from the pool's deadline, not the backstop
    _wait_for(lambda: scrape(server, 'imgcomp_live_slots{device="cpu"}') == 0, 30, "slots freed")
    assert good_request(server, faces[401]).status_code == 200


def test_a_timeout_over_the_servers_is_refused(server: httpx.Client, faces: np.ndarray) -> None:
    response = server.post("/complete", files=_files(faces[402]), data={"timeout": "61"})
    assert response.status_code == 422 and "timeout must be at most 60" in response.json()["detail"]


def test_a_client_that_disconnects_frees_its_slots(server: httpx.Client, faces: np.ndarray) -> None:
    request = server.build_request("POST", "/complete", files=_files(faces[403]), data={"iterations": "2000"})
    body = request.read()
    head = f"POST /complete HTTP/1.1\r\nHost: {request.url.host}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items() if name.lower() != "host"
    )
    with socket.create_connection((request.url.host, request.url.port)) as raw:
        raw.sendall(head.encode() + b"\r\n" + body)
        _wait_for(lambda: scrape(server, 'imgcomp_live_slots{device="cpu"}') == 1, 10, "the search running")
    # the socket is closed: the route notices, cancels the search, and its slot is dropped at the next step
    _wait_for(lambda: scrape(server, 'imgcomp_live_slots{device="cpu"}') == 0, 30, "slots freed")
    assert scrape(server, 'imgcomp_rejections_total{reason="client-gone"}') == 1
    assert good_request(server, faces[404]).status_code == 200


def test_sigterm_drains_every_accepted_request(make_tiny_store: Callable[..., Path], faces: np.ndarray) -> None:
    """Two slots for six searches: at SIGTERM some run and some wait in the queue, and all are answered."""
    # no drain notice: SIGTERM goes straight to uvicorn's graceful shutdown with searches in flight
    settings = {"slots_per_device": "2", "max_restarts": "2", "shutdown_grace_s": "60", "drain_notice_s": "0"}
    with serve_subprocess(make_tiny_store(("tiny",)), **settings) as (server, url):
        answers: list[int] = []

        def ask(index: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as own:
                data = {"iterations": "100", "restarts": "2", "seed": str(index)}
                answers.append(own.post("/complete", files=_files(faces[410 + index]), data=data).status_code)

        threads = [threading.Thread(target=ask, args=(index,)) for index in range(6)]
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=url, timeout=60) as http:
            _wait_for(lambda: scrape(http, "imgcomp_queue_depth") >= 1, 30, "searches queued")
        server.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(120)
        assert server.wait(60) in (0, -signal.SIGTERM)
        log = server.communicate()[0].decode()
        assert "Waiting for connections to close" in log, log  # the searches were in flight at SIGTERM
        assert answers == [200] * 6, log
        assert "Application shutdown complete" in log and "Traceback" not in log, log


def test_sigterm_turns_readyz_and_new_work_to_503_before_the_listener_closes(
    make_tiny_store: Callable[..., Path], faces: np.ndarray
) -> None:
    # a notice long enough that a loaded machine still asks everything below inside it
    with serve_subprocess(make_tiny_store(("tiny",)), drain_notice_s="15") as (server, url):
        with httpx.Client(base_url=url, timeout=30) as http:
            server.send_signal(signal.SIGTERM)
            _wait_for(lambda: http.get("/readyz").status_code == 503, 10, "readyz turning 503")
            assert http.get("/readyz").json()["type"].endswith("shutting-down")
            refused = http.post("/complete", files=_files(faces[420]), data={"iterations": "5"})
            assert refused.status_code == 503 and "Retry-After" in refused.headers
            assert http.get("/healthz").status_code == 200  # still answering during the notice
        assert server.wait(30) in (0, -signal.SIGTERM)
        log = server.communicate()[0].decode()
        assert "draining: readyz answers 503" in log and "Traceback" not in log, log
