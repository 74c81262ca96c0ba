"""Faults behind the real service: a step that raises, a crashed worker loop, a failing device, clients that leave,
SIGTERM under load. Each fails only what it must, and the server recovers without a restart."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.engine.batch import SearchBatch
from app.pool import _DeviceRunner
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
from tests.conftest import TINY
from training.networks import NetworkConfig

OTHER = NetworkConfig(resolution=32, z_dim=12, g_width=8, d_width=8)  # a second model, told apart by z_dim


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.02)


def files(face: np.ndarray) -> dict[str, tuple[str, bytes]]:
    hole = center_hole(*face.shape[:2])
    return {"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))}


class Injector:
    """Makes `SearchBatch.step` raise for one model (by z_dim) while `failures` > 0, and slows every step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, z_dim: int) -> None:
        self.failures = 0
        self.lock = threading.Lock()
        original = SearchBatch.step

        def step(batch: SearchBatch) -> list[int]:
            time.sleep(0.005)
            with self.lock:
                if self.failures and batch.z_dim == z_dim:
                    self.failures -= 1
                    raise RuntimeError("injected step failure")
            return original(batch)

        monkeypatch.setattr(SearchBatch, "step", step)


@pytest.fixture
def two_models(make_tiny_store: Callable[..., Path]) -> Path:
    make_tiny_store(("tiny",))
    return make_tiny_store(("other",), config=OTHER)


@pytest.fixture
def injector(monkeypatch: pytest.MonkeyPatch) -> Injector:
    return Injector(monkeypatch, TINY.z_dim)


@pytest.fixture
def server(two_models: Path, injector: Injector) -> Iterator[httpx.Client]:
    # searches that never plateau (IMGCOMP_SEARCH_PATIENCE): they end by their budget, so they are surely
    # running when a step fails, and 100 of them surely fill the 64 slots
    with serving(two_models, request_timeout_s=60, queue_size=256, search_patience=100_000) as http:
        yield http


def _ask(http: httpx.Client, face: np.ndarray, answers: list[httpx.Response], **data: str) -> threading.Thread:
    thread = threading.Thread(target=lambda: answers.append(http.post("/complete", files=files(face), data=data)))
    thread.start()
    return thread


def test_a_failing_step_fails_only_its_batch_and_the_worker_recovers(
    server: httpx.Client, injector: Injector, faces: np.ndarray
) -> None:
    doomed: list[httpx.Response] = []
    spared: list[httpx.Response] = []
    threads = [
        _ask(server, faces[600], doomed, model="tiny", iterations="400"),
        _ask(server, faces[601], spared, model="other", iterations="400"),
    ]
    wait_for(lambda: scrape(server, 'imgcomp_live_slots{device="cpu"}') == 2, 30, "both searches running")
    with injector.lock:
        injector.failures = 1
    for thread in threads:
        thread.join(60)
    assert doomed[0].status_code == 500, doomed[0].text
    assert doomed[0].headers["content-type"] == "application/problem+json"
    assert doomed[0].json()["type"].endswith(":internal-error") and "request_id" in doomed[0].json()
    assert "injected" not in doomed[0].text  # the exception's text stays in the log
    assert spared[0].status_code == 200  # the other model's batch kept stepping
    assert spared[0].headers["X-Iterations"] == "400"  # its whole budget: the server's patience setting took
    assert scrape(server, 'imgcomp_step_failures_total{device="cpu"}') == 1
    assert server.get("/readyz").status_code == 200  # one failure is not a failing device
    assert good_request(server, faces[602]).status_code == 200


def test_a_device_that_keeps_failing_turns_readiness_false_until_it_steps_again(
    server: httpx.Client, injector: Injector, faces: np.ndarray
) -> None:
    with injector.lock:
        injector.failures = 3
    for index in range(3):
        assert good_request(server, faces[610 + index]).status_code == 500
    ready = server.get("/readyz")
    assert ready.status_code == 503 and ready.json()["type"].endswith(":not-ready")
    assert "failing" in ready.json()["detail"]
    assert good_request(server, faces[613]).status_code == 200  # still accepted: the device may recover
    assert server.get("/readyz").status_code == 200


def test_a_crashed_worker_loop_is_restarted(
    server: httpx.Client, faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashes = [1]
    original = _DeviceRunner.step

    def crashing(runner: _DeviceRunner, plan: Any, *out: Any) -> Any:
        if plan.admit and crashes:
            crashes.pop()
            raise MemoryError("injected: outside any step's own error handling")
        return original(runner, plan, *out)

    monkeypatch.setattr(_DeviceRunner, "step", crashing)
    crashed = good_request(server, faces[620])
    assert crashed.status_code == 500 and crashed.json()["type"].endswith(":internal-error")
    assert scrape(server, 'imgcomp_worker_restarts_total{device="cpu"}') == 1
    assert good_request(server, faces[621]).status_code == 200
    assert scrape(server, 'imgcomp_live_slots{device="cpu"}') == 0
    assert server.get("/readyz").status_code == 200


def test_a_hundred_clients_that_leave_mid_search_leave_no_live_slot(server: httpx.Client, faces: np.ndarray) -> None:
    """64 slots: 64 searches run and 36 wait when every client hangs up; all of them are dropped."""
    request = server.build_request("POST", "/complete", files=files(faces[630]), data={"iterations": "2000"})
    body = request.read()
    head = f"POST /complete HTTP/1.1\r\nHost: {request.url.host}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in request.headers.items() if name.lower() != "host"
    )
    sockets = []
    try:
        for _ in range(100):
            raw = socket.create_connection((request.url.host, request.url.port))
            raw.sendall(head.encode() + b"\r\n" + body)
            sockets.append(raw)
        wait_for(
            lambda: (
                scrape(server, 'imgcomp_live_slots{device="cpu"}') == 64 and scrape(server, "imgcomp_queue_depth") == 36
            ),
            60,
            "64 searches running and 36 queued",
        )
    finally:
        for raw in sockets:
            raw.close()
    wait_for(lambda: scrape(server, 'imgcomp_live_slots{device="cpu"}') == 0, 30, "every slot freed")
    wait_for(lambda: scrape(server, "imgcomp_queue_depth") == 0, 30, "the queue emptied")
    wait_for(lambda: scrape(server, 'imgcomp_rejections_total{reason="client-gone"}') == 100, 30, "100 client-gone")
    assert good_request(server, faces[631]).status_code == 200


def test_sigterm_under_load_drains_what_was_accepted_and_refuses_the_rest(
    make_tiny_store: Callable[..., Path], faces: np.ndarray
) -> None:
    """Sixteen clients send back to back; at SIGTERM readyz turns 503 first, then every request is either
    answered 200 (accepted before) or refused 503 / at connect (after): none is cut off or answered 500."""
    settings = {"shutdown_grace_s": "60", "drain_notice_s": "4", "slots_per_device": "8", "max_restarts": "2"}
    outcomes: Counter[str] = Counter()
    stop = threading.Event()
    with serve_subprocess(make_tiny_store(("tiny",)), **settings) as (server, url):

        def client(index: int) -> None:
            with httpx.Client(base_url=url, timeout=120) as own:
                while not stop.is_set():
                    data = {"iterations": "60", "restarts": "2", "seed": str(index)}
                    try:
                        answer = own.post("/complete", files=files(faces[640 + index]), data=data)
                    except httpx.ConnectError:
                        outcomes["refused at connect"] += 1
                        return
                    outcomes[str(answer.status_code)] += 1
                    if answer.status_code == 503:
                        assert "Retry-After" in answer.headers
                        return

        threads = [threading.Thread(target=client, args=(index,)) for index in range(16)]
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=url, timeout=30) as http:
            wait_for(lambda: outcomes["200"] >= 16, 120, "the load running")
            server.send_signal(signal.SIGTERM)
            wait_for(lambda: http.get("/readyz").status_code == 503, 3, "readyz turning 503")
        for thread in threads:
            thread.join(120)
        stop.set()
        assert server.wait(60) in (0, -signal.SIGTERM)
        log = server.communicate()[0].decode()
    print(f"\nSIGTERM under load: {dict(outcomes)}")
    assert set(outcomes) <= {"200", "503", "refused at connect"}, (outcomes, log)
    assert outcomes["503"] + outcomes["refused at connect"] == 16, outcomes  # each client stopped by a refusal
    assert "Traceback" not in log and "Application shutdown complete" in log, log
