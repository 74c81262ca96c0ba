"""The JSON answer (`Accept: application/json`) is built off the event loop: base64 and JSON of a large image take
tens of milliseconds, in which a server building them on its loop answers nobody else."""

from __future__ import annotations

import base64
import threading
import types
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.conftest import center_hole, damaged, decode, encode, mask_png, serving


def test_the_event_loop_answers_others_while_a_json_answer_is_built(
    tiny_store: Path, faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()

    def held(data: bytes) -> bytes:
        """The route's base64, held until the test has seen the loop answer another request."""
        entered.set()
        assert release.wait(60)
        return base64.b64encode(data)

    monkeypatch.setattr("app.api.complete.base64", types.SimpleNamespace(b64encode=held))
    hole = center_hole(64, 64)
    files = {"image": ("face.png", encode(damaged(faces[700], hole))), "mask": ("m.png", mask_png(hole))}
    answers: list[httpx.Response] = []
    with serving(tiny_store) as http:
        asking = threading.Thread(
            target=lambda: answers.append(
                http.post("/complete", files=files, data={"iterations": "2"}, headers={"Accept": "application/json"})
            )
        )
        asking.start()
        try:
            assert entered.wait(60), "the JSON answer was never built"
            # while the image is being encoded for the JSON answer, the loop still serves: on the loop it would
            # be held with it, and this would time out
            with httpx.Client(base_url=str(http.base_url), timeout=10) as other:
                assert other.get("/healthz").status_code == 200
        finally:
            release.set()
            asking.join(60)
    answer = answers[0]
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert (body["format"], body["model"], body["iterations"]) == ("png", "tiny:1", 2)
    restored = decode(base64.b64decode(body["image"]))
    assert restored.shape == (64, 64, 3)
