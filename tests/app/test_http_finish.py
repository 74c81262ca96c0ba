"""Through HTTP the answer is the engine's `finish`, though the route plans it and compresses the known rows early.

POST /complete runs `plan_finish` and `compress_known` beside the search and `finish_planned` after it; the
PNG it answers must decode to what `finish` makes of the same network answer in one go, with the default
Poisson blend and edge fill, for a square upload and a wide one seen through its model window.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from app.api.uploads import decode_upload
from app.engine.compose import finish, prepare
from app.engine.onepass import OnePassJob
from app.loading import load_runners
from app.store import ModelStore
from tests.app.conftest import damaged, decode, encode, mask_png, serving
from tests.app.glcic_store import save_tiny_glcic


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store") / "model_store"
    save_tiny_glcic(root)
    return root


def _offline(store: Path, image: bytes, mask: bytes) -> np.ndarray:
    """The network's answer finished by `finish` with the service's defaults, without the service."""
    upload = decode_upload(image, mask, 10**8)
    prepared = prepare(upload.model_image, upload.hole, 32)
    entries = [entry for entry in ModelStore.discover(store, "tiny-glcic").entries() if entry.key == "tiny-glcic:1"]
    batch = load_runners(entries, ("cpu",), "auto")[0]["tiny-glcic:1"].batch()
    slot = batch.add(OnePassJob(prepared.target, prepared.hole))
    assert batch.step() == [slot]
    restored: np.ndarray = finish(upload.image, upload.hole, batch.pop(slot).generated)
    return restored


@pytest.mark.parametrize(("height", "width"), [(96, 96), (90, 160)])
def test_the_answer_is_finish_of_the_networks_fill(store: Path, faces: np.ndarray, height: int, width: int) -> None:
    face = np.resize(faces[510], (height, width, 3)).astype(np.uint8)
    hole = np.zeros((height, width), dtype=bool)
    hole[height // 3 : 2 * height // 3, width // 2 : width // 2 + 30] = True
    image, mask = encode(damaged(face, hole)), mask_png(hole)
    with serving(store, default_model="tiny-glcic") as client:
        answer = client.post("/complete", files={"image": ("f.png", image), "mask": ("m.png", mask)})
    assert answer.status_code == 200, answer.text
    restored = decode(answer.content)
    assert np.array_equal(restored[~hole], damaged(face, hole)[~hole])
    np.testing.assert_array_equal(restored, _offline(store, image, mask))


def test_a_bad_format_is_a_problem(store: Path, faces: np.ndarray) -> None:
    hole = np.zeros((64, 64), dtype=bool)
    hole[20:40, 20:40] = True
    files = {"image": ("f.png", encode(damaged(faces[511], hole))), "mask": ("m.png", mask_png(hole))}
    with serving(store, default_model="tiny-glcic") as client:
        answer: httpx.Response = client.post("/complete", files=files, data={"format": "gif"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
