"""What the public port exposes: no CORS unless configured (`*` only when meant), metrics on a port of their own, no
docs unless turned on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from app.config import METRICS_PORT, Settings
from tests.app.conftest import free_port, good_request, serve_env, serve_subprocess, serving, test_settings
from tests.conftest import REPO

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


def test_closed_by_default(module_store: Path, clean_env: None) -> None:
    """The deployed defaults: metrics off the public port (on 9464), no docs, no CORS; `public` puts /metrics back
    beside the API (as every other test here runs it)."""
    settings = Settings(model_store=module_store, default_model="tiny", devices="cpu")
    assert (settings.metrics_port, settings.docs_enabled, settings.cors_origins) == (METRICS_PORT, False, ())
    assert METRICS_PORT == 9464
    assert test_settings(module_store, metrics_port="public").metrics_port is None


def test_cors_for_any_origin_stops_start_up_with_one_line_unless_meant(module_store: Path, clean_env: None) -> None:
    with pytest.raises(ValidationError, match="IMGCOMP_CORS_ALLOW_ANY=true"):
        test_settings(module_store, cors_origins="*")
    assert test_settings(module_store, cors_origins="*", cors_allow_any=True).cors_origins == ("*",)
    env = serve_env(module_store, free_port(), cors_origins="https://a.example.com,*")
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        "invalid setting: IMGCOMP_CORS_ORIGINS=* lets every web page make its visitors' browsers call this API: "
        "list the origins that may (https://app.example.com,...), or set IMGCOMP_CORS_ALLOW_ANY=true if any is meant"
    )


def test_metrics_port_must_differ_from_the_service_port(module_store: Path, clean_env: None) -> None:
    with pytest.raises(ValidationError, match="the service's own port"):
        Settings(model_store=module_store, default_model="tiny", devices="cpu", port=8123, metrics_port=8123)


def test_no_docs_by_default(client: httpx.Client, faces: np.ndarray) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404, path
    assert "/docs" not in client.get("/").text  # the page does not link to them
    assert "/docs" not in client.get("/nowhere").json()["detail"]
    assert good_request(client, faces[702]).status_code == 200


def test_docs_when_turned_on(module_store: Path) -> None:
    with serving(module_store, docs_enabled=True) as http:
        assert http.get("/docs").status_code == 200 and http.get("/openapi.json").status_code == 200
        assert 'href="/docs"' in http.get("/").text
        assert http.get("/nowhere").json()["detail"].endswith("the endpoints are listed at /docs")
