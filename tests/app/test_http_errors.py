"""Every bad input gets its 4xx problem+json that says what to fix, and the server keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from tests.app.conftest import StepGate, center_hole, encode, good_request, mask_png, running, scrape, serving

MAX_UPLOAD = 300_000
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="module")
def limited(module_store: Path) -> Iterator[httpx.Client]:
    """One server for every bad input: each case must leave it able to serve the next."""
    with serving(module_store, max_upload_bytes=MAX_UPLOAD, max_image_pixels=MAX_PIXELS) as http:
        yield http


def _face_parts(face: np.ndarray) -> dict[str, Any]:
    return {"image": ("face.png", encode(face)), "mask": ("m.png", mask_png(center_hole(64, 64)))}


def _blank_png(width: int, height: int) -> bytes:
    """A file of a few kilobytes that declares width x height pixels (a decompression bomb when large)."""
    return encode(np.zeros((height, width), dtype=bool), "PNG")


def _noise(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


# name -> (build the request from a face, expected status, expected problem reason)
CASES: dict[str, tuple[Callable[[np.ndarray], dict[str, Any]], int, str]] = {
    "not an image": (
        lambda f: {"files": {**_face_parts(f), "image": ("x.png", b"hello, not a picture")}},
        415,
        "not-an-image",
    ),
    "gif": (lambda f: {"files": {**_face_parts(f), "image": ("x.gif", encode(f, "GIF"))}}, 415, "not-an-image"),
    "truncated image": (
        lambda f: {"files": {**_face_parts(f), "image": ("x.png", encode(_noise(64, 64))[:4000])}},
        422,
        "truncated-image",
    ),
    "mask of another size": (
        lambda f: {"files": {**_face_parts(f), "mask": ("m.png", mask_png(center_hole(32, 32)))}},
        422,
        "mask-size-mismatch",
    ),
    "empty mask": (
        lambda f: {"files": {**_face_parts(f), "mask": ("m.png", mask_png(np.zeros((64, 64), bool)))}},
        422,
        "bad-mask",
    ),
    "all-hole mask": (
        lambda f: {"files": {**_face_parts(f), "mask": ("m.png", mask_png(np.ones((64, 64), bool)))}},
        422,
        "bad-mask",
    ),
    "no mask and no alpha": (lambda f: {"files": {"image": ("face.png", encode(f))}}, 422, "missing-mask"),
    "unknown model": (lambda f: {"files": _face_parts(f), "data": {"model": "cats"}}, 422, "unknown-model"),
    "unknown version": (lambda f: {"files": _face_parts(f), "data": {"model": "tiny:9"}}, 422, "unknown-model"),
    "zero iterations": (lambda f: {"files": _face_parts(f), "data": {"iterations": "0"}}, 422, "invalid-parameter"),
    "too many iterations": (
        lambda f: {"files": _face_parts(f), "data": {"iterations": "100000"}},
        422,
        "invalid-parameter",
    ),
    "too many restarts": (lambda f: {"files": _face_parts(f), "data": {"restarts": "99"}}, 422, "invalid-parameter"),
    "negative seed": (lambda f: {"files": _face_parts(f), "data": {"seed": "-1"}}, 422, "invalid-parameter"),
    "iterations not a number": (
        lambda f: {"files": _face_parts(f), "data": {"iterations": "many"}},
        422,
        "invalid-parameter",
    ),
    "unknown blend": (lambda f: {"files": _face_parts(f), "data": {"blend": "magic"}}, 422, "invalid-parameter"),
    "unknown format": (lambda f: {"files": _face_parts(f), "data": {"format": "gif"}}, 422, "invalid-parameter"),
    "missing image field": (
        lambda f: {"files": {"mask": ("m.png", mask_png(center_hole(64, 64)))}},
        422,
        "invalid-parameter",
    ),
    "upload over the size limit": (
        lambda f: {"files": {**_face_parts(f), "image": ("big.png", encode(_noise(400, 400)))}},
        413,
        "upload-too-large",
    ),
    "more pixels than allowed": (
        lambda f: {"files": {**_face_parts(f), "image": ("wide.png", _blank_png(1200, 1000))}},
        413,
        "image-too-large",
    ),
    "decompression bomb": (
        lambda f: {"files": {**_face_parts(f), "image": ("bomb.png", _blank_png(20_000, 20_000))}},
        413,
        "image-too-large",
    ),
}


def _assert_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:imgcomp:problem:{reason}"
    assert body["status"] == status and body["title"]
    assert len(body["detail"]) > 20, "the detail must say what to fix"
    assert "Traceback" not in body["detail"]
    return body


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns, the server refuses
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_answers_problem_then_serves(limited: httpx.Client, faces: np.ndarray, case: str) -> None:
    build, status, reason = CASES[case]
    _assert_problem(limited.post("/complete", **build(faces[200])), status, reason)
    assert good_request(limited, faces[201]).status_code == 200


def test_bomb_is_small_on_the_wire() -> None:
    assert len(_blank_png(20_000, 20_000)) < MAX_UPLOAD
    assert 20_000 * 20_000 > 2 * Image.MAX_IMAGE_PIXELS  # Pillow's own guard would raise too


def test_streamed_upload_over_the_limit(limited: httpx.Client, faces: np.ndarray) -> None:
    """No Content-Length (chunked): the limit is enforced while the body streams in."""
    request = limited.build_request("POST", "/complete", files={"image": ("big.png", encode(_noise(400, 400)))})
    body = request.read()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = limited.post("/complete", content=chunks(), headers={"content-type": request.headers["content-type"]})
    _assert_problem(response, 413, "upload-too-large")
    assert good_request(limited, faces[202]).status_code == 200


def test_malformed_multipart(limited: httpx.Client, faces: np.ndarray) -> None:
    body = b"--xyz\r\nContent-Disposition: form-data; name=image\r\n\r\nabc\r\n--xyz--\r\n"
    response = limited.post("/complete", content=body, headers={"content-type": "multipart/form-data"})  # no boundary
    _assert_problem(response, 400, "malformed-body")
    assert good_request(limited, faces[203]).status_code == 200


def test_wrong_method_and_path(client: httpx.Client) -> None:
    _assert_problem(client.get("/complete"), 405, "method-not-allowed")
    _assert_problem(client.get("/nothing-here"), 404, "not-found")


def test_full_queue_answers_503_with_retry_after(
    make_settings: Callable[..., Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = StepGate(monkeypatch)
    with running(make_settings(queue_size=1, retry_after_s=3)) as url, httpx.Client(base_url=url, timeout=60) as http:
        answers: list[int] = []
        threads = [threading.Thread(target=lambda: answers.append(good_request(http, faces[210]).status_code))]
        threads[0].start()
        assert gate.entered.wait(30)  # the first search holds the only worker
        threads.append(threading.Thread(target=lambda: answers.append(good_request(http, faces[211]).status_code)))
        threads[1].start()
        deadline = time.monotonic() + 30
        while scrape(http, "imgcomp_queue_depth") < 1:  # the second waits in the only queue place
            assert time.monotonic() < deadline
            time.sleep(0.02)
        refused = good_request(http, faces[212])
        body = _assert_problem(refused, 503, "queue-full")
        assert refused.headers["retry-after"] == "3" and "retry" in body["detail"]
        gate.release.set()
        for thread in threads:
            thread.join(60)
        assert answers == [200, 200]
        assert good_request(http, faces[213]).status_code == 200
        assert scrape(http, 'imgcomp_rejections_total{reason="queue-full"}') == 1


def test_deadline_answers_504(
    make_settings: Callable[..., Settings], faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = StepGate(monkeypatch)
    with running(make_settings(request_timeout_s=0.5)) as url, httpx.Client(base_url=url, timeout=60) as http:
        _assert_problem(good_request(http, faces[220]), 504, "timeout")
        gate.release.set()
        assert good_request(http, faces[221]).status_code == 200
