"""`POST /v1/faces` on a real server: a real face in a real photo is found where it is, a photo with none
answers an empty list, bad uploads are problem+json, and the token guards it as it guards `/complete`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.conftest import damaged, encode, mask_png, serving
from tests.app.face_scene import face_scene, iou, no_face

TOKEN = "open-sesame"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def http(module_store: Path) -> Iterator[httpx.Client]:
    """One server on the tiny store whose `tiny` model counts as a face model, behind a token."""
    with serving(module_store, face_models=("tiny",), api_token=TOKEN, docs_enabled=True) as client:
        yield client


def find(http: httpx.Client, photo: np.ndarray, hole: np.ndarray | None = None) -> httpx.Response:
    files = {"image": ("photo.png", encode(photo), "image/png")}
    if hole is not None:
        files["mask"] = ("mask.png", mask_png(hole), "image/png")
    return http.post("/v1/faces", files=files, headers=AUTH)


def test_a_face_in_a_photo_is_found_where_it_is(http: httpx.Client) -> None:
    scene = face_scene()
    answer = find(http, scene.photo)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["faces"]) == 1, body
    box = body["faces"][0]["box"]
    assert all(isinstance(v, int) for v in box) and body["faces"][0]["score"] > 0
    assert iou(tuple(box), scene.face) > 0.6, (box, scene.face)
    x, y, w, h = scene.face
    assert x <= box[0] + box[2] / 2 <= x + w and y <= box[1] + box[3] / 2 <= y + h  # centred on the face
    assert body["face_models"] == ["tiny"]
    assert body["seconds"] >= 0


def test_a_damaged_face_is_found_under_its_mask(http: httpx.Client) -> None:
    """With a mask, the face the hole damages is still found (on the hole's pre-fill)."""
    scene = face_scene()
    x, y, w, h = scene.face
    hole = np.zeros(scene.photo.shape[:2], dtype=bool)
    hole[y + h * 3 // 5 : y + h * 17 // 20, x + w // 4 : x + w * 3 // 4] = True  # nose and mouth
    answer = find(http, damaged(scene.photo, hole), hole)
    assert answer.status_code == 200, answer.text
    boxes = [face["box"] for face in answer.json()["faces"]]
    assert any(iou(tuple(box), scene.face) > 0.5 for box in boxes), boxes


def test_a_photo_with_no_face_answers_an_empty_list(http: httpx.Client) -> None:
    answer = find(http, no_face())
    assert answer.status_code == 200, answer.text
    assert answer.json()["faces"] == []


def test_transparency_is_accepted_as_the_hole(http: httpx.Client) -> None:
    scene = face_scene()
    rgba = np.dstack([scene.photo, np.full(scene.photo.shape[:2], 255, np.uint8)])
    rgba[10:40, 10:40, 3] = 0  # a hole far from the face
    answer = http.post("/v1/faces", files={"image": ("p.png", encode(rgba), "image/png")}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["faces"]) == 1


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"\x89PNG\r\n\x1a\nthis is not a png", 415, "not-an-image"),
        (encode(no_face())[:5000], 422, "truncated-image"),
        (b"", 415, "not-an-image"),
    ],
    ids=["garbage", "truncated", "empty"],
)
def test_a_corrupt_image_is_a_problem(http: httpx.Client, data: bytes, status: int, reason: str) -> None:
    answer = http.post("/v1/faces", files={"image": ("photo.png", data, "image/png")}, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith(":" + reason)


def test_a_mask_of_another_size_is_a_422(http: httpx.Client) -> None:
    answer = find(http, no_face(), np.zeros((10, 10), dtype=bool))
    assert answer.status_code == 422 and answer.json()["type"].endswith(":mask-size-mismatch")


def test_the_token_guards_it(http: httpx.Client) -> None:
    files = {"image": ("photo.png", encode(no_face()), "image/png")}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = http.post("/v1/faces", files=files, headers=headers)
        assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
    missing = http.post("/v1/faces", headers=AUTH)
    assert missing.status_code == 422 and missing.headers["content-type"] == "application/problem+json"


def test_it_is_documented(http: httpx.Client) -> None:
    operation = http.get("/openapi.json").json()["paths"]["/v1/faces"]["post"]
    assert operation["summary"] == "Find the faces in a photo"
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    assert example["faces"][0]["box"] and "seconds" in example
    assert {"401", "415", "422"} <= set(operation["responses"])
