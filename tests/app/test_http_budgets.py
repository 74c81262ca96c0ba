"""Admission weighs what a request will hold, not only how many there are: bodies by their declared bytes before they
are read, uploads by their pixels from the image headers before decoding; past either budget, 503 + Retry-After."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.api import complete
from app.config import Settings
from tests.app.conftest import StepGate, center_hole, damaged, encode, good_request, mask_png, running, scrape
from tests.app.test_http_errors import _assert_problem


def _hold_one_search(
    http: httpx.Client, gate: StepGate, face: np.ndarray, answers: list[httpx.Response]
) -> threading.Thread:
    """A completion whose search holds the worker in its first step: its bytes and pixels stay held meanwhile."""
    thread = threading.Thread(target=lambda: answers.append(good_request(http, face)))
    thread.start()
    assert gate.entered.wait(60), "the first search never started"
    return thread


def _large(face: np.ndarray) -> dict[str, tuple[str, bytes]]:
    photo = np.repeat(np.repeat(face, 2, axis=0), 2, axis=1)  # 128x128: four times the pixels
    hole = center_hole(*photo.shape[:2])
    return {"image": ("face.png", encode(damaged(photo, hole))), "mask": ("m.png", mask_png(hole))}


def test_past_the_byte_budget_a_request_is_refused_before_its_body_is_read(
    make_settings: Callable[..., Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = StepGate(monkeypatch)
    reads: list[int] = []
    original = complete.declared_pixels
    monkeypatch.setattr(complete, "declared_pixels", lambda data: reads.append(1) or original(data))
    # one request's body (~10 kB) fits alone; a second on top of it does not
    settings = make_settings(admission_bytes=12_000, retry_after_s=3)
    answers: list[httpx.Response] = []
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        holder = _hold_one_search(http, gate, faces[520], answers)
        try:
            read_before = len(reads)
            refused = good_request(http, faces[521])
            _assert_problem(refused, 503, "queue-full")
            assert refused.headers["retry-after"] == "3"
            assert "of the server's 12,000 bytes" in refused.json()["detail"]
            assert len(reads) == read_before  # refused at the door: the route never read its body
            assert scrape(http, 'imgcomp_rejections_total{reason="queue-full"}') == 1
        finally:
            gate.release.set()
            holder.join(60)
        assert answers[0].status_code == 200, answers[0].text
        assert good_request(http, faces[522]).status_code == 200  # the bytes went back when the first ended


def test_past_the_pixel_budget_a_request_is_refused_before_decoding(
    make_settings: Callable[..., Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = StepGate(monkeypatch)
    decodes: list[int] = []
    original = complete.decode_upload
    monkeypatch.setattr(complete, "decode_upload", lambda *a: decodes.append(1) or original(*a))
    # a 64x64 photo and its mask hold 8,192 pixels: two such uploads fit, a 128x128 one beside them does not
    settings = make_settings(admission_pixels=20_000, retry_after_s=3)
    answers: list[httpx.Response] = []
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        holder = _hold_one_search(http, gate, faces[530], answers)
        try:
            decoded_before = len(decodes)
            refused = http.post("/complete", files=_large(faces[531]), data={"iterations": "3"})
            _assert_problem(refused, 503, "queue-full")
            assert refused.headers["retry-after"] == "3"
            detail = refused.json()["detail"]
            assert "hold 8,192 of the server's 20,000 pixels and this one has 32,768" in detail, detail
            assert len(decodes) == decoded_before  # refused from the headers: nothing was decoded
        finally:
            gate.release.set()
            holder.join(60)
        assert answers[0].status_code == 200, answers[0].text
        # alone it is admitted although it is over the budget: it waits for an idle server, not forever
        alone = http.post("/complete", files=_large(faces[531]), data={"iterations": "3"})
        assert alone.status_code == 200, alone.text


def _open_temporary_files() -> int:
    """Files of this process (the server runs in it) open under the temporary folder: spooled upload bodies."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        count += target.startswith(tempfile.gettempdir())
    return count


def test_a_spooled_upload_gives_its_disk_back_before_the_search(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image over 1 MB is spooled to /tmp while the form is parsed; its file is closed once read, so searches
    that wait or run for minutes do not keep the disk their uploads took."""
    gate = StepGate(monkeypatch)
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    hole = center_hole(700, 700)
    files = {"image": ("noise.png", encode(noise)), "mask": ("m.png", mask_png(hole))}
    assert len(files["image"][1]) > 1_100_000  # over Starlette's 1 MB in-memory spool
    answers: list[httpx.Response] = []
    with running(make_settings()) as url, httpx.Client(base_url=url, timeout=60) as http:
        before = _open_temporary_files()
        thread = threading.Thread(
            target=lambda: answers.append(http.post("/complete", files=files, data={"iterations": "2"}))
        )
        thread.start()
        try:
            assert gate.entered.wait(60), "the search never started"
            assert _open_temporary_files() == before  # the search runs; the upload's spool file is gone
        finally:
            gate.release.set()
            thread.join(60)
    assert answers[0].status_code == 200, answers[0].text


def test_finding_faces_is_weighed_by_the_same_pixel_budget(
    make_settings: Callable[..., Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`POST /v1/faces` decodes an upload as a completion does: past the pixel budget it gets the same 503 before
    decoding, and alone it is answered."""
    gate = StepGate(monkeypatch)
    settings = make_settings(admission_pixels=20_000, retry_after_s=3)
    answers: list[httpx.Response] = []
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as http:
        holder = _hold_one_search(http, gate, faces[540], answers)
        try:
            refused = http.post("/v1/faces", files=_large(faces[541]))
            _assert_problem(refused, 503, "queue-full")
            assert refused.headers["retry-after"] == "3"
            assert "hold 8,192 of the server's 20,000 pixels and this one has 32,768" in refused.json()["detail"]
        finally:
            gate.release.set()
            holder.join(60)
        assert answers[0].status_code == 200, answers[0].text
        alone = http.post("/v1/faces", files=_large(faces[541]))
        assert alone.status_code == 200, alone.text
