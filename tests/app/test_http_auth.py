"""With IMGCOMP_API_TOKEN set, completions need the bearer token; health and models stay open for probes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.app.conftest import good_request, serving

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(module_store: Path) -> Iterator[httpx.Client]:
    with serving(module_store, api_token=TOKEN) as http:
        yield http


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"], ids=str
)
def test_completion_without_the_token_is_401_problem(
    guarded: httpx.Client, faces: np.ndarray, header: str | None
) -> None:
    if header is not None:
        guarded.headers["Authorization"] = header
    try:
        response = good_request(guarded, faces[310])
    finally:
        guarded.headers.pop("Authorization", None)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["type"].endswith(":unauthorized")
    assert "Authorization: Bearer" in body["detail"]
    assert TOKEN not in response.text


def test_completion_with_the_token_is_served(guarded: httpx.Client, faces: np.ndarray) -> None:
    guarded.headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        response = good_request(guarded, faces[310])
    finally:
        guarded.headers.pop("Authorization", None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"


def test_probes_stay_open(guarded: httpx.Client) -> None:
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/readyz").status_code == 200
    assert guarded.get("/v1/models").status_code == 200


def test_no_token_configured_means_open(client: httpx.Client, faces: np.ndarray) -> None:
    assert good_request(client, faces[311]).status_code == 200
