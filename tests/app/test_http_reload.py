"""`POST /v1/models/reload` on a real server: new versions, broken ones, and searches in flight meanwhile.

Reloading needs the API token (and is refused while the server has none), so these servers have one
and their clients send it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.engine.batch import SearchBatch
from app.store import ModelStore
from tests.app.conftest import center_hole, damaged, encode, mask_png, serving
from tests.app.glcic_store import save_tiny_glcic
from tests.conftest import TINY
from training.checkpoint import CheckpointError, save_checkpoint, sha256_of
from training.networks import Discriminator, Generator

TOKEN = "reload-token"


@contextmanager
def _serving(store: Path, **overrides: object) -> Iterator[httpx.Client]:
    """A real server with an API token, and a client that sends it."""
    with serving(store, api_token=TOKEN, **overrides) as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        yield http


def _publish(store: Path, source: str, version: str) -> Path:
    """What an operator does: copy a version into a hidden staging folder, then rename it into place."""
    staging = store / "tiny" / f".staging-{version}"
    shutil.copytree(store / "tiny" / source, staging)
    target = store / "tiny" / version
    os.replace(staging, target)
    return target


def _complete(http: httpx.Client, face: np.ndarray, model: str = "tiny", iterations: int = 3) -> httpx.Response:
    hole = center_hole(*face.shape[:2])
    return http.post(
        "/complete",
        files={"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))},
        data={"model": model, "iterations": str(iterations), "restarts": "1"},
    )


def _metric(http: httpx.Client, series: str) -> float | None:
    """The value of one exact series (`name{labels}` as exported), or None when it is not exported."""
    for line in http.get("/metrics").text.splitlines():
        if line.rsplit(" ", 1)[0] == series:
            return float(line.rsplit(" ", 1)[1])
    return None


def _info(version: str) -> str:
    return f'imgcomp_model_info{{dataset="none (test)",model="tiny",resolution="32",version="{version}"}}'


def _serving_keys(http: httpx.Client) -> list[str]:
    return [model["key"] for model in http.get("/v1/models").json()["models"]]


@pytest.fixture
def store(make_tiny_store: Callable[..., Path]) -> Path:
    return make_tiny_store(("tiny",))


def test_a_new_version_is_served_without_a_restart(store: Path, faces: np.ndarray) -> None:
    with _serving(store) as http:
        assert _complete(http, faces[0]).headers["X-Model"] == "tiny:1"
        assert _metric(http, _info("2")) is None
        _publish(store, "1", "2")

        answer = http.post("/v1/models/reload")

        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "changed": True,
            "loaded": ["tiny:2"],
            "unloaded": [],
            "serving": ["tiny:1", "tiny:2"],
            "default": "tiny:2",
        }
        listed = http.get("/v1/models").json()
        assert listed["default"] == "tiny:2" and listed["draining"] == []
        assert {m["key"]: m["latest"] for m in listed["models"]} == {"tiny:1": False, "tiny:2": True}
        # the name now resolves to the new version; the old one still answers when named
        assert _complete(http, faces[1]).headers["X-Model"] == "tiny:2"
        assert _complete(http, faces[1], model="tiny:1").headers["X-Model"] == "tiny:1"
        assert http.get("/readyz").json()["models"] == ["tiny:1", "tiny:2"]
        assert _metric(http, _info("2")) == 1.0
        assert _metric(http, 'imgcomp_model_reloads_total{outcome="changed"}') == 1.0

        again = http.post("/v1/models/reload")
        assert again.status_code == 200 and again.json()["changed"] is False and again.json()["loaded"] == []
        assert _metric(http, 'imgcomp_model_reloads_total{outcome="unchanged"}') == 1.0


def _corrupt(folder: Path) -> str:
    data = bytearray((folder / "generator.safetensors").read_bytes())
    data[-8:] = bytes(8)  # flip the last weights: the header still parses, the sha256 no longer matches
    (folder / "generator.safetensors").write_bytes(bytes(data))
    return "does not match the sha256"


def _drop_file(folder: Path) -> str:
    (folder / "discriminator.safetensors").unlink()
    return "discriminator.safetensors is missing"


def _wrong_shape(folder: Path) -> str:
    """Weights of a wider generator, with a card whose checksum matches them: only the shapes are wrong."""
    wider = dataclasses.replace(TINY, g_width=TINY.g_width * 2)
    card = {"dataset": {"name": "none (test)"}, "training": {"steps": 0}}
    other_store = folder.parents[2] / "other_store"
    other = save_checkpoint(other_store, "wide", "1", Generator(wider), Discriminator(wider), wider, card)
    shutil.copyfile(other / "generator.safetensors", folder / "generator.safetensors")
    card = json.loads((folder / "model.json").read_text())
    card["weights"]["generator"]["sha256"] = sha256_of(folder / "generator.safetensors")
    (folder / "model.json").write_text(json.dumps(card))
    return "does not fit the network described in model.json"


def test_a_broken_version_is_refused_and_the_old_ones_keep_serving(
    store: Path, faces: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    with _serving(store) as http:
        for attempt, damage in enumerate((_corrupt, _drop_file, _wrong_shape), start=1):
            folder = _publish(store, "1", "2")
            fault = damage(folder)
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="app.api.models"):
                answer = http.post("/v1/models/reload")

            assert answer.status_code == 409, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert problem["type"] == "urn:imgcomp:problem:model-refused"
            assert "version tiny:2 cannot be served" in problem["detail"] and fault in problem["detail"]
            assert problem["serving"] == ["tiny:1"]
            logged = [record.getMessage() for record in caplog.records]
            assert any("model reload refused" in line and fault in line for line in logged), logged
            # nothing changed: the name still resolves to the old version, which still answers
            assert _serving_keys(http) == ["tiny:1"]
            assert _complete(http, faces[attempt]).headers["X-Model"] == "tiny:1"
            assert _metric(http, _info("2")) is None
            assert _metric(http, 'imgcomp_model_reloads_total{outcome="refused"}') == attempt
            shutil.rmtree(folder)

        # once the broken folder is replaced by a good one, the next reload serves it
        _publish(store, "1", "2")
        assert http.post("/v1/models/reload").json()["loaded"] == ["tiny:2"]
        assert _complete(http, faces[0]).headers["X-Model"] == "tiny:2"


class Gate:
    """Every search step waits until the gate opens: searches stay in flight as long as the test needs."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.held_slots = 0  # slots of the step waiting at the gate

    def step(self, original: Callable[[SearchBatch], list[int]], batch: SearchBatch) -> list[int]:
        self.held_slots = batch.live_slots
        assert self.opened.wait(60), "the test never opened the gate"
        return original(batch)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate()
    original = SearchBatch.step
    monkeypatch.setattr(SearchBatch, "step", lambda batch: held.step(original, batch))
    yield held
    held.opened.set()


def test_searches_in_flight_finish_on_the_version_they_started_with(store: Path, faces: np.ndarray, gate: Gate) -> None:
    """A reload that adds tiny:2 and removes tiny:1 while searches of tiny:1 run and wait."""
    in_flight = 3
    with _serving(store, queue_size=8) as http:
        answers: list[httpx.Response] = []
        answered_at: list[float] = []

        def send(index: int) -> None:
            with httpx.Client(base_url=str(http.base_url), headers=http.headers, timeout=60) as own:
                answers.append(_complete(own, faces[index]))
                answered_at.append(time.monotonic())

        senders = [threading.Thread(target=send, args=(index,)) for index in range(in_flight)]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        # every search accepted: one step holds some at the gate, the rest wait in the queue
        while gate.held_slots + (_metric(http, "imgcomp_queue_depth") or 0) < in_flight:
            assert time.monotonic() < deadline, "the searches were not all accepted within 30 s"
            time.sleep(0.05)

        _publish(store, "1", "2")
        retired = store / "tiny" / ".retired-1"
        os.replace(store / "tiny" / "1", retired)  # hidden folders are not versions
        answer = http.post("/v1/models/reload")
        reloaded_at = time.monotonic()

        assert answer.status_code == 200, answer.text
        assert answer.json()["loaded"] == ["tiny:2"] and answer.json()["unloaded"] == ["tiny:1"]
        listed = http.get("/v1/models").json()
        assert _serving_keys(http) == ["tiny:2"] and listed["draining"] == ["tiny:1"]
        assert _metric(http, _info("1")) is None and _metric(http, _info("2")) == 1.0
        named = _complete(http, faces[5], model="tiny:1")
        assert named.status_code == 422 and named.json()["type"] == "urn:imgcomp:problem:unknown-model"
        assert not answers, "a search finished while every step was held"

        gate.opened.set()
        for sender in senders:
            sender.join(60)
        assert [a.status_code for a in answers] == [200] * in_flight, [a.text for a in answers]
        assert {a.headers["X-Model"] for a in answers} == {"tiny:1"}
        assert min(answered_at) > reloaded_at
        assert _complete(http, faces[6]).headers["X-Model"] == "tiny:2"
        # the old version's networks are freed once its last search has answered
        deadline = time.monotonic() + 10
        while http.get("/v1/models").json()["draining"]:
            assert time.monotonic() < deadline, "tiny:1 was never unloaded"
            time.sleep(0.05)


def test_reload_needs_the_api_token_when_one_is_set(store: Path) -> None:
    with serving(store, api_token="reload-secret") as http:
        refused = http.post("/v1/models/reload")
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        allowed = http.post("/v1/models/reload", headers={"Authorization": "Bearer reload-secret"})
        assert allowed.status_code == 200 and allowed.json()["serving"] == ["tiny:1"]


def test_reload_is_refused_while_the_server_has_no_token(store: Path) -> None:
    """Closed by default: a server without IMGCOMP_API_TOKEN reloads nothing, whatever the request sends."""
    with serving(store) as http:
        _publish(store, "1", "2")
        for headers in ({}, {"Authorization": "Bearer anything"}):
            refused = http.post("/v1/models/reload", headers=headers)
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
            problem = refused.json()
            assert problem["type"] == "urn:imgcomp:problem:forbidden"
            assert "IMGCOMP_API_TOKEN" in problem["detail"] and "Authorization: Bearer" in problem["detail"]
        assert _serving_keys(http) == ["tiny:1"]
        assert _metric(http, 'imgcomp_model_reloads_total{outcome="changed"}') == 0
        assert http.post("/complete").status_code == 422  # completions stay open without a token


def test_a_reload_that_removes_the_default_model_is_refused(store: Path) -> None:
    with _serving(store) as http:
        os.replace(store / "tiny", store / ".tiny-gone")
        answer = http.post("/v1/models/reload")
        assert answer.status_code == 409 and "there is no model 'tiny'" in answer.json()["detail"]
        assert _serving_keys(http) == ["tiny:1"]


def _restart_refuses(store: Path, fault: str) -> None:
    """What `serve` checks before it starts refuses the store, for the same reason."""
    with pytest.raises(CheckpointError, match=fault):
        ModelStore.discover(store, "tiny").verify()


def test_a_reload_refuses_what_a_restart_refuses(store: Path, faces: np.ndarray) -> None:
    with _serving(store) as http:
        # a one-pass folder without the discriminator it does not serve: a restart refuses it, so must a reload
        folder = save_tiny_glcic(store, version="1")
        (folder / "local_discriminator.safetensors").unlink()
        fault = f"{folder}/local_discriminator.safetensors is missing"
        _restart_refuses(store, fault)

        answer = http.post("/v1/models/reload")

        assert answer.status_code == 409, answer.text
        assert "version tiny-glcic:1 cannot be served" in answer.json()["detail"] and fault in answer.json()["detail"]
        assert _serving_keys(http) == ["tiny:1"]
        shutil.rmtree(folder)

        # a served version whose file changed on disk: the next restart would exit 2, so the reload says so now
        _drop_file(store / "tiny" / "1")
        fault = "discriminator.safetensors is missing"
        _restart_refuses(store, fault)
        answer = http.post("/v1/models/reload")
        assert answer.status_code == 409, answer.text
        assert "version tiny:1 cannot be served" in answer.json()["detail"] and fault in answer.json()["detail"]
        assert _complete(http, faces[7]).headers["X-Model"] == "tiny:1"  # the loaded networks keep serving
