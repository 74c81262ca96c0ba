"""Operations endpoints on a real server: health, readiness, models and their samples, metrics, docs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.api.problems import REASONS
from tests.app.conftest import RESOLUTION, decode, encode, good_request, serving

METRICS = {
    "imgcomp_requests",
    "imgcomp_request_duration_seconds",
    "imgcomp_queue_wait_seconds",
    "imgcomp_queue_depth",
    "imgcomp_live_slots",
    "imgcomp_slots_per_step",
    "imgcomp_step_duration_seconds",
    "imgcomp_iterations_per_request",
    "imgcomp_rejections",
    "imgcomp_model_info",
    "imgcomp_device_info",
}


@pytest.fixture(scope="module")
def samples() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def ops(module_store: Path, samples: np.ndarray) -> Iterator[httpx.Client]:
    (module_store / "tiny" / "1" / "samples.png").write_bytes(encode(samples))
    with serving(module_store, docs_enabled=True) as http:  # the schema is read below
        yield http


def test_health_and_readiness(ops: httpx.Client) -> None:
    assert ops.get("/healthz").json() == {"status": "ok"}
    ready = ops.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"] == ["tiny:1"]


def test_models_and_samples(ops: httpx.Client, samples: np.ndarray) -> None:
    listing = ops.get("/v1/models").json()
    assert listing["default"] == "tiny:1"
    (model,) = listing["models"]
    assert model | {"samples_url": None} == {
        "name": "tiny",
        "version": "1",
        "key": "tiny:1",
        "latest": True,
        "kind": "search",
        "parameters": ["iterations", "restarts", "init"],
        "resolution": RESOLUTION,
        "encoder": False,
        "dataset": "none (test)",
        "samples_url": None,
    }
    picture = ops.get(model["samples_url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(decode(picture.content), samples)
    missing = ops.get("/v1/models/tiny/7/samples.png")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_metrics_parse_and_count(ops: httpx.Client, faces: np.ndarray) -> None:
    assert good_request(ops, faces[300]).status_code == 200
    assert ops.post("/complete", data={"model": "tiny"}).status_code == 422
    response = ops.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert METRICS <= set(families)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("imgcomp_requests_total", (("model", "tiny"), ("status", "200")))] >= 1
    assert samples[("imgcomp_rejections_total", (("reason", "invalid-parameter"),))] >= 1
    assert samples[("imgcomp_iterations_per_request_count", (("init", "random"),))] >= 1  # tiny has no encoder
    info = (("dataset", "none (test)"), ("model", "tiny"), ("resolution", str(RESOLUTION)), ("version", "1"))
    assert samples[("imgcomp_model_info", info)] == 1
    assert any(name == "imgcomp_device_info" and dict(labels)["device"] == "cpu" for name, labels in samples)


def test_openapi_documents_the_form(ops: httpx.Client) -> None:
    assert ops.get("/docs").status_code == 200
    spec = ops.get("/openapi.json").json()
    operation = spec["paths"]["/complete"]["post"]
    assert "image/png" in operation["responses"]["200"]["content"]
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    schema = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
    assert {"image", "mask", "model", "iterations", "restarts", "seed", "blend", "format"} <= set(schema["properties"])
    assert schema["required"] == ["image"]


def test_every_rejection_reason_is_exported_from_the_start(client: httpx.Client) -> None:
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    exported = {s.labels["reason"] for s in families["imgcomp_rejections"].samples if s.name.endswith("_total")}
    assert exported >= set(REASONS)
