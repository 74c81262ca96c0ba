"""Load is shed before any work: a full queue refuses at the door, decoding is bounded, blending keeps the deadline."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import httpx
import numpy as np
import pytest

from app.api import complete
from app.api.admission import BoundedExecutor
from app.config import Settings
from app.engine import restore
from app.engine.batch import SearchBatch
from app.scheduler import QueueFullError
from tests.app.conftest import (
    center_hole,
    damaged,
    encode,
    good_request,
    mask_png,
    raw_response,
    running,
    scrape,
    serve_subprocess,
)
from tests.app.test_http_errors import _assert_problem


class _Held:
    """Holds every call of `target` until released, counting calls: the test decides when work proceeds."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
        self.calls = 0
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        original = getattr(owner, name)

        def held(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.entered.release()
            assert self.release.wait(120)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, held)


def _in_background(action: Callable[[], httpx.Response], answers: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: answers.append(action().status_code))
    thread.start()
    return thread


def test_a_full_queue_refuses_before_decoding(
    make_settings: Callable[[], Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = _Held(monkeypatch, SearchBatch, "step")
    decodes: list[int] = []
    original = complete.decode_upload
    monkeypatch.setattr(complete, "decode_upload", lambda *a: decodes.append(1) or original(*a))
    settings = make_settings(queue_size=1, retry_after_s=4)  # type: ignore[call-arg]
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        answers: list[int] = []
        threads = [_in_background(lambda: good_request(http, faces[500]), answers)]
        assert step.entered.acquire(timeout=30)  # the first search holds the worker
        threads.append(_in_background(lambda: good_request(http, faces[501]), answers))
        deadline = time.monotonic() + 30
        while "imgcomp_queue_depth 1.0" not in http.get("/metrics").text:  # the second holds the queue place
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for index in range(5):
            refused = good_request(http, faces[502 + index])
            _assert_problem(refused, 503, "queue-full")
            assert refused.headers["retry-after"] == "4"
        assert len(decodes) == 2  # the five refused were never decoded
        step.release.set()
        for thread in threads:
            thread.join(60)
        assert answers == [200, 200]
        assert good_request(http, faces[510]).status_code == 200


def test_requests_still_decoding_count_against_the_queue(
    make_settings: Callable[[], Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool's queue empty, two uploads being decoded already take both queue places."""
    decode = _Held(monkeypatch, complete, "decode_upload")
    settings = make_settings(queue_size=2, postprocess_threads=2)  # type: ignore[call-arg]
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        answers: list[int] = []
        threads = [_in_background(lambda i=i: good_request(http, faces[520 + i]), answers) for i in range(2)]
        assert decode.entered.acquire(timeout=30) and decode.entered.acquire(timeout=30)
        _assert_problem(good_request(http, faces[522]), 503, "queue-full")
        assert decode.calls == 2
        decode.release.set()
        for thread in threads:
            thread.join(60)
        assert answers == [200, 200]
        assert good_request(http, faces[523]).status_code == 200  # the passes were given back


def test_the_post_processing_backlog_is_bounded() -> None:
    executor = BoundedExecutor(1, max_pending=2)
    gate = threading.Event()
    held: list[Future[Any]] = [executor.submit(gate.wait, 30) for _ in range(2)]
    with pytest.raises(QueueFullError):
        executor.submit(time.sleep, 0)
    gate.set()
    for future in held:
        assert future.result(30)
    deadline = time.monotonic() + 10
    while executor.pending:  # the done callbacks run just after the results are set
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert executor.submit(lambda: 7).result(10) == 7
    executor.shutdown()


def test_blending_and_encoding_answer_within_the_deadline(
    make_settings: Callable[[], Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = _Held(monkeypatch, restore, "finish_planned")  # the blend after the search
    with running(make_settings()) as url, httpx.Client(base_url=url, timeout=60) as http:
        started = time.monotonic()
        response = good_request_with(http, faces[530], timeout="1")
        body = _assert_problem(response, 504, "timeout")
        assert "blending and encoding" in body["detail"]
        assert time.monotonic() - started < 30  # answered at the deadline, not when the blend ends
        finish.release.set()
        assert good_request(http, faces[531]).status_code == 200


def good_request_with(http: httpx.Client, face: np.ndarray, **data: str) -> httpx.Response:
    hole = center_hole(64, 64)
    files = {"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))}
    return http.post("/complete", files=files, data={"iterations": "3", **data})


def test_uvicorn_refuses_connections_past_its_concurrency_limit(
    make_tiny_store: Callable[..., Any], faces: np.ndarray
) -> None:
    with serve_subprocess(make_tiny_store(("tiny",)), limit_concurrency="3") as (_, url):
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(3)]
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                deadline = time.monotonic() + 10
                while http.get("/healthz").status_code != 503:  # once uvicorn has registered the three
                    assert time.monotonic() < deadline, "the fourth connection was served"
                    time.sleep(0.05)
        finally:
            for connection in idle:
                connection.close()
        with httpx.Client(base_url=url, timeout=30) as http:
            deadline = time.monotonic() + 10
            while http.get("/healthz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert good_request(http, faces[540]).status_code == 200


def test_a_trickled_upload_gives_its_queue_place_back_at_the_upload_deadline(
    make_settings: Callable[[], Settings], faces: np.ndarray
) -> None:
    """A client that sends its body slowly holds a queue place only until `upload_timeout_s`, then gets 408."""
    settings = make_settings(queue_size=1, upload_timeout_s=2.0)  # type: ignore[call-arg]
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as slow:
            head = (
                "POST /complete HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=xyz\r\n"
                "Content-Length: 100000\r\n\r\n"
            )
            slow.sendall(head.encode() + b"--xyz\r\nContent-Disposition: form-data; name=image")
            deadline = time.monotonic() + 30
            while (refused := good_request(http, faces[550])).status_code != 503:  # once the trickle holds the place
                assert refused.status_code == 200 and time.monotonic() < deadline
            _assert_problem(refused, 503, "queue-full")
            status, headers, body = raw_response(slow)
        assert (int(status.split()[1]), headers["content-type"]) == (408, "application/problem+json")
        problem = json.loads(body)
        assert problem["type"] == "urn:imgcomp:problem:upload-too-slow"
        assert "within 2 s" in problem["detail"] and "IMGCOMP_UPLOAD_TIMEOUT_S" in problem["detail"]
        assert good_request(http, faces[551]).status_code == 200  # the place was given back
        assert scrape(http, 'imgcomp_rejections_total{reason="upload-too-slow"}') == 1.0


def test_a_steady_upload_is_not_cut_by_the_deadline_once_its_body_is_in(
    make_settings: Callable[[], Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline bounds the body's arrival only: a search that runs past it still answers 200."""
    step = _Held(monkeypatch, SearchBatch, "step")
    settings = make_settings(upload_timeout_s=1.0)  # type: ignore[call-arg]
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        answers: list[int] = []
        thread = _in_background(lambda: good_request(http, faces[552]), answers)
        assert step.entered.acquire(timeout=30)
        time.sleep(1.5)  # past the upload deadline while the search waits
        step.release.set()
        thread.join(60)
        assert answers == [200]
