"""What the public port exposes: no CORS unless configured, metrics on a port of their own, docs that can be hidden."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from app.config import Settings
from tests.app.conftest import free_port, good_request, serve_subprocess, serving, test_settings

ORIGIN = "https://photos.example.com"


def _preflight(http: httpx.Client, origin: str) -> httpx.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    return http.options("/complete", headers=headers)


def test_no_cors_by_default(client: httpx.Client, faces: np.ndarray) -> None:
    """A browser on another site gets no Access-Control-Allow-Origin, so it may not send the job nor read the answer."""
    assert "access-control-allow-origin" not in _preflight(client, ORIGIN).headers
    answer = client.post("/complete", headers={"Origin": ORIGIN}, files={"image": ("x", b"x")})
    assert "access-control-allow-origin" not in answer.headers


def test_configured_origins_and_only_those(module_store: Path, faces: np.ndarray) -> None:
    with serving(module_store, cors_origins=f"{ORIGIN}, https://other.example.org/") as http:
        allowed = _preflight(http, ORIGIN)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-origin" not in _preflight(http, "https://evil.example.net").headers
        answer = good_request_from(http, faces[700], ORIGIN)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()


def good_request_from(http: httpx.Client, face: np.ndarray, origin: str) -> httpx.Response:
    http.headers["Origin"] = origin
    try:
        return good_request(http, face)
    finally:
        del http.headers["Origin"]


@pytest.mark.parametrize("origins", ["photos.example.com", "https://a.example.com/app", "ftp://x.example.com"])
def test_an_origin_that_is_not_one_stops_start_up(module_store: Path, clean_env: None, origins: str) -> None:
    with pytest.raises(ValidationError, match="is not an origin"):
        test_settings(module_store, cors_origins=origins)


def test_metrics_on_their_own_port(module_store: Path, faces: np.ndarray) -> None:
    port = free_port()
    with serve_subprocess(module_store, metrics_port=str(port)) as (_, url), httpx.Client(base_url=url) as http:
        assert good_request(http, faces[701]).status_code == 200
        assert http.get("/metrics").status_code == 404
        scraped = http.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        assert 'imgcomp_requests_total{model="tiny",status="200"} 1.0' in scraped.text


def test_metrics_port_must_differ_from_the_service_port(module_store: Path, clean_env: None) -> None:
    with pytest.raises(ValidationError, match="the service's own port"):
        Settings(model_store=module_store, default_model="tiny", devices="cpu", port=8123, metrics_port=8123)


def test_docs_can_be_hidden(module_store: Path, faces: np.ndarray) -> None:
    with serving(module_store, docs_enabled=False) as http:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert http.get(path).status_code == 404, path
        assert good_request(http, faces[702]).status_code == 200


def test_docs_are_served_by_default(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
