"""With IMGCOMP_API_TOKEN set, completions need the bearer token; health and models stay open for probes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.config import Settings
from app.main import create_app
from tests.app.conftest import good_request, raw_response, scrape, serving

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


# --- the token before the body: TokenMiddleware, in front of the upload limits and the admission door ---

HELD_UPLOAD = 19_000_000  # bytes a client announces and never sends: under the upload limit, so no 413 comes first


def _announce(url: httpx.URL, path: str, *extra: str) -> socket.socket:
    """A raw client that sends the headers of a large multipart POST and none of its body."""
    sock = socket.create_connection((url.host, url.port), timeout=5)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {url.host}:{url.port}",
        "Content-Type: multipart/form-data; boundary=imgcomp-test-boundary",
        f"Content-Length: {HELD_UPLOAD}",
        *extra,
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _assert_unauthorized(sock: socket.socket) -> None:
    status, headers, body = raw_response(sock)
    assert status.startswith("HTTP/1.1 401"), status  # not `100 Continue`: nobody asked for the body
    assert headers["content-type"] == "application/problem+json"
    assert headers["www-authenticate"].startswith("Bearer") and headers["x-request-id"]
    assert json.loads(body)["type"] == "urn:imgcomp:problem:unauthorized"
    assert headers["connection"] == "close" and sock.recv(65536) == b""  # the body is never read


def test_a_request_without_the_token_is_refused_from_its_headers_and_takes_no_queue_place(
    module_store: Path, faces: np.ndarray
) -> None:
    queue_size = 2
    with serving(module_store, api_token=TOKEN, queue_size=queue_size) as http:
        first = _announce(http.base_url, "/complete")
        started = time.perf_counter()
        with first:
            _assert_unauthorized(first)  # today: the door admits it and the form parser waits 60 s for the body
        assert time.perf_counter() - started < 1.0

        # more clients without the token than the queue has places, all still connected
        holders = [
            _announce(http.base_url, "/complete"),
            _announce(http.base_url, "/complete", "Authorization: Bearer wrong-token"),
            _announce(http.base_url, "/complete", "Expect: 100-continue"),
            _announce(http.base_url, "/complete", f"Authorization: Basic {TOKEN}"),
            _announce(http.base_url, "/v1/models/reload"),
        ]
        assert len(holders) > queue_size
        try:
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            served = good_request(http, faces[312])
            assert served.status_code == 200, served.text
            assert scrape(http, 'imgcomp_rejections_total{reason="queue-full"}') == 0
            assert scrape(http, "imgcomp_queue_depth") == 0
            completions = 1 + 4
            assert scrape(http, 'imgcomp_rejections_total{reason="unauthorized"}') == completions
            assert scrape(http, 'imgcomp_requests_total{model="none",status="401"}') == completions
            for holder in holders:
                _assert_unauthorized(holder)
        finally:
            http.headers.pop("Authorization", None)
            for holder in holders:
                holder.close()


def test_the_middleware_guards_every_route_that_depends_on_a_guard(make_settings: Callable[..., Settings]) -> None:
    # imported here, so that the module's other tests run on code without these names
    from app.api.auth import guarded_routes, require_admin_token, require_token

    routes = guarded_routes(create_app(make_settings()).routes)
    assert {(route.path, route.methods, route.guards) for route in routes} == {
        ("/complete", frozenset({"POST"}), (require_token,)),
        ("/v1/faces", frozenset({"POST"}), (require_token,)),
        ("/v1/models/reload", frozenset({"POST"}), (require_admin_token,)),
    }
