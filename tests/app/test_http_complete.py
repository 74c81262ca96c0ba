"""POST /complete against a real uvicorn on a real port: issue 4's acceptance cases, on real faces."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import RESOLUTION, center_hole, damaged, decode, encode, mask_png
from tests.app.icc import rgb_profile
from tests.app.photo_files import with_orientation
from training.masks import make_mask


def _complete(http: httpx.Client, image: bytes, mask: bytes | None = None, **data: str) -> httpx.Response:
    files = {"image": ("upload", image)}
    if mask is not None:
        files["mask"] = ("mask", mask)
    return http.post("/complete", files=files, data={"iterations": "5", **data})


def _assert_restored(response: httpx.Response, sent: np.ndarray, hole: np.ndarray, fill: int = 128) -> np.ndarray:
    """Same size, every known pixel byte-identical to what was sent, the hole really filled."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    out = decode(response.content)
    assert out.shape == sent.shape
    np.testing.assert_array_equal(out[~hole], sent[~hole])
    assert np.abs(out[hole].astype(int) - fill).mean() > 1.0, "the hole still holds the mask fill"
    return out


def test_center_hole_png(client: httpx.Client, faces: np.ndarray) -> None:
    face = faces[100]
    hole = center_hole(64, 64)
    upload = damaged(face, hole)
    response = _complete(client, encode(upload), mask_png(hole))
    _assert_restored(response, upload, hole)
    assert response.headers["x-model"] == "tiny:1"
    assert 1 <= int(response.headers["x-iterations"]) <= 5
    assert float(response.headers["x-search-seconds"]) > 0
    assert float(response.headers["x-total-seconds"]) >= float(response.headers["x-search-seconds"])
    assert len(response.headers["x-request-id"]) >= 16
    assert "search;dur=" in response.headers["server-timing"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_alpha_channel_marks_the_hole(client: httpx.Client, faces: np.ndarray, fmt: str) -> None:
    face = faces[101]
    hole = center_hole(64, 64)
    rgba = np.dstack([damaged(face, hole), np.where(hole, 0, 255).astype(np.uint8)])
    options = {"lossless": True} if fmt == "WEBP" else {}
    response = _complete(client, encode(rgba, fmt, **options))
    _assert_restored(response, rgba[..., :3], hole)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_lossy_uploads_keep_their_decoded_pixels(client: httpx.Client, faces: np.ndarray, fmt: str) -> None:
    face = faces[102]
    hole = center_hole(64, 64)
    data = encode(damaged(face, hole), fmt, quality=90)
    sent = decode(data)  # what the server decodes is what must come back outside the hole
    response = _complete(client, data, mask_png(hole))
    _assert_restored(response, sent, hole, fill=int(sent[hole].mean()))


def test_non_square_upload_three_times_the_model_resolution(client: httpx.Client, faces: np.ndarray) -> None:
    height, width = 3 * RESOLUTION, 5 * RESOLUTION
    face = np.asarray(Image.fromarray(faces[103]).resize((width, height), Image.Resampling.BICUBIC))
    hole = center_hole(height, width)
    upload = damaged(face, hole)
    _assert_restored(_complete(client, encode(upload), mask_png(hole)), upload, hole)


def test_free_form_stroke_mask(client: httpx.Client, faces: np.ndarray) -> None:
    hole = make_mask("strokes", 64, np.random.default_rng(3))
    upload = damaged(faces[104], hole)
    _assert_restored(_complete(client, encode(upload), mask_png(hole), blend="none"), upload, hole)


def test_json_answer(client: httpx.Client, faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    upload = damaged(faces[105], hole)
    response = client.post(
        "/complete",
        files={"image": ("a.png", encode(upload)), "mask": ("m.png", mask_png(hole))},
        data={"iterations": "4", "restarts": "2", "seed": "7"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny:1" and body["format"] == "png"
    assert 1 <= body["iterations"] <= 4 and np.isfinite(body["loss"])
    assert set(body["timings"]) == {"decode_s", "locate_s", "queue_s", "search_s", "encode_s", "total_s"}
    assert body["request_id"] == response.headers["x-request-id"]
    out = decode(base64.b64decode(body["image"]))
    np.testing.assert_array_equal(out[~hole], upload[~hole])


@pytest.mark.parametrize(("fmt", "media_type"), [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_output_format(client: httpx.Client, faces: np.ndarray, fmt: str, media_type: str) -> None:
    hole = center_hole(64, 64)
    response = _complete(client, encode(damaged(faces[106], hole)), mask_png(hole), format=fmt)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert decode(response.content).shape == (64, 64, 3)


def test_seed_reproduces_and_request_id_is_echoed(client: httpx.Client, faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    image, mask = encode(damaged(faces[107], hole)), mask_png(hole)
    first = _complete(client, image, mask, seed="11")
    again = client.post(
        "/complete",
        files={"image": ("a.png", image), "mask": ("m.png", mask)},
        data={"iterations": "5", "seed": "11"},
        headers={"X-Request-ID": "client-id-1"},
    )
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert again.headers["x-request-id"] == "client-id-1"


def test_named_version(client: httpx.Client, faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    response = _complete(client, encode(damaged(faces[108], hole)), mask_png(hole), model="tiny:1")
    assert response.status_code == 200, response.text
    assert response.headers["x-model"] == "tiny:1"


def test_wide_gamut_upload_comes_back_in_its_own_profile(client: httpx.Client, faces: np.ndarray) -> None:
    profile = rgb_profile()
    hole = center_hole(64, 64)
    upload = damaged(faces[107], hole)
    response = _complete(client, encode(upload, "PNG", icc_profile=profile), mask_png(hole))
    _assert_restored(response, upload, hole)
    assert Image.open(io.BytesIO(response.content)).info["icc_profile"] == profile


def test_sideways_phone_photo_is_completed_upright(client: httpx.Client, faces: np.ndarray) -> None:
    photo = np.ascontiguousarray(faces[108][:, 8:56])  # 64 x 48, stored turned: orientation 6 shows it 48 x 64
    upright = np.ascontiguousarray(np.rot90(photo, -1))
    hole = center_hole(48, 64)
    response = _complete(client, with_orientation(photo, 6, "PNG"), mask_png(hole))
    _assert_restored(response, upright, hole, fill=-1000)
