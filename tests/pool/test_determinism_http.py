"""Same seed, same upload: the same bytes back, alone or among 32 other requests, through the real service."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.conftest import damaged, encode, mask_png, serving
from training.masks import make_mask


def _ask(http: httpx.Client, face: np.ndarray, kind: str, index: int, **data: str) -> httpx.Response:
    hole = make_mask(kind, 64, np.random.default_rng(index)).astype(bool)
    files = {"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))}
    answer = http.post("/complete", files=files, data={"init": "random", **data})
    assert answer.status_code == 200, answer.text
    return answer


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_request_alone_and_among_32_others_gets_the_same_bytes(
    make_tiny_store: Callable[..., Path], faces: np.ndarray, precision: str
) -> None:
    request = {"iterations": "120", "restarts": "2", "seed": "5"}
    with serving(make_tiny_store(("tiny",)), precision=precision, max_iterations=400, max_restarts=4) as http:
        alone = _ask(http, faces[800], "strokes", 0, **request)
        assert alone.headers["X-Batch-Slots"] == "2"  # its own two restarts, no other search beside it
        answers: dict[int, httpx.Response] = {}

        def other(index: int) -> None:
            budget = {"iterations": str(20 + 11 * index), "restarts": str(1 + index % 3), "seed": str(index)}
            answers[index] = _ask(http, faces[801 + index], ("center", "blocks", "half")[index % 3], index, **budget)

        def ours() -> None:
            answers[-1] = _ask(http, faces[800], "strokes", 0, **request)

        threads = [threading.Thread(target=other, args=(index,)) for index in range(16)]
        threads += [threading.Thread(target=ours)]
        threads += [threading.Thread(target=other, args=(index,)) for index in range(16, 32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert len(answers) == 33
        # it shared steps with other searches (a step of more slots than its own two restarts), and still
        assert int(answers[-1].headers["X-Batch-Slots"]) > 2, answers[-1].headers
        assert answers[-1].content == alone.content  # the PNG byte for byte
