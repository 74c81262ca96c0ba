"""A one-pass (`glcic`) model served beside a search model by a real uvicorn: same route, same pool."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.api.uploads import decode_upload
from app.engine.batch import SearchBatch
from app.engine.compose import finish, prepare
from app.engine.onepass import OnePassJob
from app.loading import load_runners
from app.store import ModelStore
from tests.app.conftest import center_hole, damaged, decode, encode, mask_png, save_tiny_search, scrape, serving
from tests.app.glcic_store import save_tiny_glcic


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny` (a search model whose card predates kinds: no `kind` field) and `tiny-glcic` (one pass)."""
    root = tmp_path_factory.mktemp("store") / "model_store"
    folder = save_tiny_search(root)
    written = json.loads((folder / "model.json").read_text())
    del written["kind"]  # as a folder written before kinds were named
    (folder / "model.json").write_text(json.dumps(written))
    save_tiny_glcic(root)
    return root


@pytest.fixture(scope="module")
def http(store: Path) -> Iterator[httpx.Client]:
    with serving(store) as client:
        yield client


def _post(http: httpx.Client, face: np.ndarray, hole: np.ndarray, **data: str) -> httpx.Response:
    files = {"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))}
    return http.post("/complete", files=files, data=data)


def test_models_show_each_kind_and_the_parameters_it_takes(http: httpx.Client) -> None:
    models = {m["key"]: m for m in http.get("/v1/models").json()["models"]}
    assert {key: (m["kind"], m["parameters"]) for key, m in models.items()} == {
        "tiny:1": ("search", ["iterations", "restarts", "init"]),  # no `kind` in its card: read as the search kind
        "tiny-glcic:1": ("glcic", []),
    }
    assert models["tiny-glcic:1"]["resolution"] == 32 and models["tiny-glcic:1"]["encoder"] is False


def _network_answer(store: Path, files: dict[str, tuple[str, bytes]], key: str) -> np.ndarray:
    """What the version's completion network makes of the upload, computed here without the service: the photo
    brought to its resolution, one forward, its fill put back at the photo's size with nothing blended in."""
    upload = decode_upload(files["image"][1], files["mask"][1], 10**8)
    prepared = prepare(upload.model_image, upload.hole, 32)
    entries = [entry for entry in ModelStore.discover(store, "tiny").entries() if entry.key == key]
    batch = load_runners(entries, ("cpu",), "auto")[0][key].batch()  # the server's precision setting
    slot = batch.add(OnePassJob(prepared.target, prepared.hole))
    assert batch.step() == [slot]
    restored: np.ndarray = finish(upload.image, upload.hole, batch.pop(slot).generated, blend="none", edge=None)
    return restored


def test_a_one_pass_completion_is_the_networks_own_fill(http: httpx.Client, store: Path, faces: np.ndarray) -> None:
    # an upload larger than the model and not square: prepared to its 32x32, finished at 80x64
    face = np.repeat(faces[500], 2, axis=0)[:80]
    hole = center_hole(*face.shape[:2])
    files = {"image": ("face.png", encode(damaged(face, hole))), "mask": ("m.png", mask_png(hole))}
    answer = http.post("/complete", files=files, data={"model": "tiny-glcic", "blend": "none", "edge": "none"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model"] == "tiny-glcic:1"
    assert answer.headers["X-Iterations"] == "0" and answer.headers["X-Init"] == "none"
    restored, sent = decode(answer.content), damaged(face, hole)
    assert restored.shape == face.shape
    assert np.array_equal(restored[~hole], sent[~hole])  # byte-identical known pixels
    # every hole pixel is the network's: not a classical fill, another model's, or the upload's own grey
    expected = _network_answer(store, files, "tiny-glcic:1")
    np.testing.assert_array_equal(restored, expected)
    assert len(np.unique(restored[hole].reshape(-1, 3), axis=0)) > 16  # a picture, not a flat fill


def test_a_one_pass_completion_answers_json_and_is_counted_at_zero_iterations(
    http: httpx.Client, faces: np.ndarray
) -> None:
    series = 'imgcomp_iterations_per_request_count{init="none"}'
    before = scrape(http, series) if series in http.get("/metrics").text else 0.0
    hole = center_hole(64, 64)
    answer = http.post(
        "/complete",
        files={"image": ("f.png", encode(damaged(faces[501], hole))), "mask": ("m.png", mask_png(hole))},
        data={"model": "tiny-glcic:1"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["init"], body["iterations"], body["loss"]) == ("tiny-glcic:1", "none", 0, None)
    assert scrape(http, series) == before + 1
    assert scrape(http, 'imgcomp_iterations_per_request_sum{init="none"}') == 0.0


@pytest.mark.parametrize(
    ("field", "value"), [("iterations", "10"), ("iterations", "0"), ("restarts", "2"), ("init", "random")]
)
def test_search_knobs_on_a_one_pass_model_are_a_422_naming_it(
    http: httpx.Client, faces: np.ndarray, field: str, value: str
) -> None:
    answer = _post(http, faces[502], center_hole(64, 64), model="tiny-glcic", **{field: value})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    detail = answer.json()["detail"]
    assert "model tiny-glcic:1 (kind glcic) takes no " + field in detail and "GET /v1/models" in detail


def test_the_search_model_still_searches(http: httpx.Client, faces: np.ndarray) -> None:
    answer = _post(http, faces[503], center_hole(64, 64), model="tiny", iterations="3", restarts="1")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model"] == "tiny:1" and answer.headers["X-Iterations"] == "3"


class PacedSearch:
    """Each search step of the in-process server sleeps a little and is timed, so a search lasts many
    seconds and the test can see whether anything finished between two of its steps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pause: float) -> None:
        self.started = threading.Event()
        self.steps: list[float] = []  # perf_counter at the end of each search step
        original = SearchBatch.step

        def paced(batch: SearchBatch) -> Any:
            self.started.set()
            time.sleep(pause)
            finished = original(batch)
            self.steps.append(time.perf_counter())
            return finished

        monkeypatch.setattr(SearchBatch, "step", paced)


def test_a_one_pass_job_finishes_while_a_search_runs_on_the_same_worker(
    store: Path, faces: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    pace = PacedSearch(monkeypatch, pause=0.03)
    hole = center_hole(64, 64)
    # plateaus read every step: the search's iterations are then exactly the steps it took
    with serving(store, devices="cpu", max_iterations=400, plateau_every=1) as client:
        answers: dict[str, httpx.Response] = {}
        search = threading.Thread(
            target=lambda: answers.update(
                search=_post(client, faces[504], hole, model="tiny", iterations="400", restarts="1")
            )
        )
        search.start()
        assert pace.started.wait(60), "the search never took a step"
        one_pass = _post(client, faces[505], hole, model="tiny-glcic")
        answered = time.perf_counter()
        search.join(120)
    assert one_pass.status_code == 200, one_pass.text
    assert answers["search"].status_code == 200, answers["search"].text
    # the search took steps after the one-pass answer was back: it did not wait for the search to end
    later = [step for step in pace.steps if step > answered]
    assert later, f"the search ended ({len(pace.steps)} steps) before the one-pass job was answered"
    assert int(answers["search"].headers["X-Iterations"]) == len(pace.steps)


def test_a_glcic_version_is_served_after_a_reload_and_a_broken_one_refused(
    make_tiny_store: Callable[..., Path], faces: np.ndarray
) -> None:
    store = make_tiny_store(("tiny",))
    hole = center_hole(64, 64)
    with serving(store, api_token="glcic-token") as client:  # reloading needs a token
        client.headers["Authorization"] = "Bearer glcic-token"
        unknown = _post(client, faces[506], hole, model="tiny-glcic")
        assert unknown.status_code == 422 and "there is no model 'tiny-glcic'" in unknown.json()["detail"]
        save_tiny_glcic(store, version="1")

        answer = client.post("/v1/models/reload")

        assert answer.status_code == 200, answer.text
        assert answer.json()["loaded"] == ["tiny-glcic:1"]
        completed = _post(client, faces[506], hole, model="tiny-glcic")
        assert completed.status_code == 200, completed.text
        assert completed.headers["X-Model"] == "tiny-glcic:1" and completed.headers["X-Iterations"] == "0"

        broken = save_tiny_glcic(store, version="2", seed=1)
        (broken / "completion.safetensors").unlink()
        refused = client.post("/v1/models/reload")
        assert refused.status_code == 409
        assert (
            f"version tiny-glcic:2 cannot be served: {broken}/completion.safetensors is missing"
            in (refused.json()["detail"])
        )
        assert _post(client, faces[507], hole, model="tiny-glcic").headers["X-Model"] == "tiny-glcic:1"
