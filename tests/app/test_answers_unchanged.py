"""The shipped models answer byte for byte what they answered before model kinds became one entry each.

`python -m app serve` from the commit before that change (exported from git history) and from this
checkout, on the same store of shipped models, get the same requests: every answer's status, bytes
and search headers must agree. Refusals are compared by status and problem type (their wording may
improve); a JSON answer by its image and search figures. A PNG is compared by its pixels: the encoder's
settings changed since (app.api.png), and PNG is lossless whatever they are.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from app.engine import make_mask
from tests.app.conftest import center_hole, damaged, encode, mask_png, serve_subprocess
from tests.app.face_scene import face_scene, held_out_face
from tests.conftest import FACES_NPZ, REPO, SHIPPED_STORE, held_out_indices
from tests.history import export

BEFORE_KINDS = "e21bee9de1432cae377e328a21fe2061874305a8"  # main before the kind entries
SERVED = ("faces/2", "faces-128/2", "faces-glcic/1", "faces-framing/2")
SEARCH_HEADERS = ("x-model", "x-init", "x-iterations", "content-type", "x-faces", "x-faces-found")

Request = tuple[str, bytes, bytes, dict[str, str], dict[str, str]]  # name, image, mask, form, headers


def _store(into: Path) -> Path:
    for version in SERVED:
        folder = into / "store" / version
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.symlink_to(SHIPPED_STORE / version, target_is_directory=True)
    return into / "store"


def _held_out_face() -> np.ndarray:
    (index,) = held_out_indices(SHIPPED_STORE / "faces" / "2", 1)
    with np.load(FACES_NPZ) as archive:
        image: np.ndarray = archive["images"][index]
    return image


def _requests() -> list[Request]:
    face = _held_out_face()
    centre = center_hole(64, 64)
    strokes = make_mask("strokes", 64, np.random.default_rng(3))
    big = held_out_face(128)
    big_hole = center_hole(128, 128)
    scene = face_scene()
    x, y, side, _ = scene.face
    scene_hole = np.zeros(scene.photo.shape[:2], bool)
    scene_hole[y + side // 2 : y + side // 2 + 24, x + 10 : x + side - 10] = True

    def upload(image: np.ndarray, hole: np.ndarray) -> tuple[bytes, bytes]:
        return encode(damaged(image, hole)), mask_png(hole)

    as_json = {"Accept": "application/json"}
    return [
        ("encoder start", *upload(face, centre), {"model": "faces", "iterations": "20", "restarts": "2"}, {}),
        (
            "random start",
            *upload(face, strokes),
            {"model": "faces", "init": "random", "iterations": "12", "restarts": "2", "seed": "5", "region": "whole"},
            {},
        ),
        ("encoder guess", *upload(face, centre), {"model": "faces", "iterations": "0"}, {}),
        ("one pass", *upload(face, centre), {"model": "faces-glcic"}, {}),
        ("one pass, JSON", *upload(face, strokes), {"model": "faces-glcic", "format": "webp"}, as_json),
        ("one pass with a search knob", *upload(face, centre), {"model": "faces-glcic", "iterations": "3"}, {}),
        ("128, JPEG", *upload(big, big_hole), {"model": "faces-128", "iterations": "8", "format": "jpeg"}, {}),
        ("a face in a photo", *upload(scene.photo, scene_hole), {"iterations": "8", "restarts": "1"}, as_json),
        ("default model and budget", *upload(face, strokes), {"iterations": "30", "restarts": "1"}, {}),
        ("too many restarts", *upload(face, centre), {"model": "faces", "restarts": "999"}, {}),
    ]


def _picture(data: bytes) -> bytes:
    """A PNG's decoded pixels; any other answer's bytes as they are."""
    if not data.startswith(b"\x89PNG"):
        return data
    with Image.open(io.BytesIO(data)) as picture:
        return picture.mode.encode() + repr(picture.size).encode() + picture.tobytes()


def _answers(store: Path, tree: Path, requests: list[Request]) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    with (
        serve_subprocess(store, tree, default_model="faces") as (_, url),
        httpx.Client(base_url=url, timeout=300) as http,
    ):
        for name, image, mask, form, headers in requests:
            response = http.post(
                "/complete", files={"image": ("in.png", image), "mask": ("m.png", mask)}, data=form, headers=headers
            )
            answer: dict[str, Any] = {"status": response.status_code}
            answer |= {header: response.headers.get(header) for header in SEARCH_HEADERS}
            if response.status_code != 200:
                answer["type"] = response.json()["type"]
            elif "json" in response.headers["content-type"]:
                body = response.json()
                answer |= {key: body[key] for key in ("model", "init", "iterations", "format", "fallback")}
                answer["image"] = _picture(base64.b64decode(body["image"]))
                answer["faces"] = [(face["box"], face["status"], face["model"]) for face in body["faces"]]
            else:
                answer["body"] = _picture(response.content)
            answers[name] = answer
    return answers


@pytest.mark.slow
def test_shipped_models_answer_as_before_the_kind_entries(tmp_path: Path) -> None:
    before_tree = export(BEFORE_KINDS, tmp_path, "before")
    store = _store(tmp_path)
    requests = _requests()
    before = _answers(store, before_tree, requests)
    now = _answers(store, REPO, requests)
    assert before.keys() == now.keys()
    for name in before:
        assert now[name] == before[name], name
    statuses = [answer["status"] for answer in now.values()]
    assert statuses.count(200) == 8 and statuses.count(422) == 2, statuses
    assert now["a face in a photo"]["image"].startswith(b"RGB(600, 400)")
    assert now["a face in a photo"]["faces"] and now["a face in a photo"]["faces"][0][1] == "restored"
