"""The search's start over HTTP: encoder where the model has one, random otherwise, one pass, clear 422s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from tests.app.conftest import center_hole, damaged, decode, encode, mask_png, serving
from tests.conftest import TINY
from training.checkpoint import save_with_encoder
from training.networks import Encoder, EncoderConfig


@pytest.fixture(scope="module")
def client(module_store: Path) -> Iterator[httpx.Client]:
    """tiny:1 without an encoder, tiny:2 = tiny:1's G and D plus one."""
    torch.manual_seed(5)
    save_with_encoder(module_store / "tiny" / "1", "2", Encoder(TINY, EncoderConfig(width=8, groups=4)).eval(), {})
    with serving(module_store) as http:
        yield http


def _post(http: httpx.Client, face: np.ndarray, **data: str) -> tuple[httpx.Response, np.ndarray, np.ndarray]:
    hole = center_hole(64, 64)
    upload = damaged(face, hole)
    files = {"image": ("face.png", encode(upload)), "mask": ("m.png", mask_png(hole))}
    return http.post("/complete", files=files, data=data), upload, hole


def test_models_say_which_have_an_encoder(client: httpx.Client) -> None:
    models = {m["key"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["tiny:1"]["encoder"] is False and models["tiny:2"]["encoder"] is True
    assert models["tiny:2"]["kind"] == "search" and models["tiny:2"]["latest"]


def test_default_start_follows_the_model(client: httpx.Client, faces: np.ndarray) -> None:
    with_encoder, _, _ = _post(client, faces[10])
    assert with_encoder.status_code == 200, with_encoder.text
    assert (with_encoder.headers["x-model"], with_encoder.headers["x-init"]) == ("tiny:2", "encoder")
    without, _, _ = _post(client, faces[10], model="tiny:1")
    assert without.status_code == 200, without.text
    assert (without.headers["x-model"], without.headers["x-init"]) == ("tiny:1", "random")


def test_one_pass_keeps_known_pixels(client: httpx.Client, faces: np.ndarray) -> None:
    response, upload, hole = _post(client, faces[11], iterations="0")
    assert response.status_code == 200, response.text
    assert response.headers["x-iterations"] == "0"
    out = decode(response.content)
    np.testing.assert_array_equal(out[~hole], upload[~hole])
    assert np.abs(out[hole].astype(int) - 128).mean() > 1.0


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ({"model": "tiny:1", "init": "encoder"}, "tiny:1 has no encoder"),
        ({"init": "random", "iterations": "0"}, "needs init=encoder"),
        ({"init": "sideways"}, "init"),
    ],
)
def test_impossible_starts_are_clear_422s(client: httpx.Client, faces: np.ndarray, data: dict, detail: str) -> None:
    response, _, _ = _post(client, faces[12], **data)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert client.get("/readyz").status_code == 200
