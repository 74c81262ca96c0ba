"""A third model kind is one entry: OpenCV's Telea as a `classical` kind, served through the same pool.

Everything the kind means is in this file: its card's network config and (empty) weight roles, how its
jobs run on a worker, which request parameters it takes (a `radius` of its own), what its answer reports
and what a step costs. Registered, it is written by the checkpoint writer, found by the store, loaded into
the pool, listed by `/v1/models`, answered by `POST /complete` on a real server (its `radius` a form field
of the route and of the OpenAPI schema) and by `python -m app complete --radius`, with no other file
knowing its name.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import torch

from app.__main__ import main
from app.api.uploads import decode_upload
from app.engine.compose import finish, prepare
from app.engine.errors import EngineError
from app.engine.kinds import Limits, ModelFacts, Report, RequestParameter, ServedKind, registered
from app.engine.search import SearchResult, check_job
from app.engine.stepping import StepOptions, run_to_end
from app.main import create_app
from tests.app.conftest import (
    center_hole,
    damaged,
    decode,
    encode,
    mask_png,
    save_tiny_search,
    serving,
    test_settings,
)
from training.checkpoint import LoadedModel, save_model
from training.kinds import ModelKind

RESOLUTION = 32


@dataclass(frozen=True)
class ClassicalConfig:
    """The card's `network`: the square the photo is brought to, and Telea's radius in its pixels."""

    resolution: int = RESOLUTION
    channels: int = 3
    radius: int = 3

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassicalConfig:
        return cls(**{key: int(data[key]) for key in cls.__dataclass_fields__ if key in data})


@dataclass(frozen=True)
class ClassicalParams:
    """Telea's radius (None: the card's); one slot for one step, no start."""

    radius: int | None = None
    slots: int = 1
    start: str = "none"


@dataclass(frozen=True)
class ClassicalJob:
    target: torch.Tensor
    hole: torch.Tensor
    params: ClassicalParams


class TeleaBatch:
    """Every job admitted before a step is inpainted by that step."""

    def __init__(self, config: ClassicalConfig) -> None:
        self.config = config
        self._live: dict[int, tuple[ClassicalJob, float]] = {}
        self._done: dict[int, SearchResult] = {}
        self._next = 0

    @property
    def live_slots(self) -> int:
        return len(self._live)

    def add(self, job: Any) -> int:
        if not isinstance(job, ClassicalJob):
            raise EngineError("a classical model runs classical jobs")
        check_job(job.target, job.hole, self.config.channels, self.config.resolution)
        self._next += 1
        self._live[self._next] = (job, time.perf_counter())
        return self._next

    def step(self) -> list[int]:
        keys = list(self._live)
        for key in keys:
            job, admitted = self._live.pop(key)
            radius = job.params.radius or self.config.radius
            self._done[key] = SearchResult(telea(job.target, job.hole, radius), 0.0, 0, 0.0)
        return keys

    def pop(self, key: int) -> SearchResult:
        return self._done.pop(key)

    def cancel(self, key: int) -> None:
        self._live.pop(key, None)
        self._done.pop(key, None)


class TeleaRunner:
    has_encoder = False

    def __init__(self, config: ClassicalConfig) -> None:
        self.config = config

    def batch(self) -> TeleaBatch:
        return TeleaBatch(self.config)

    def run(self, jobs: Sequence[Any]) -> list[SearchResult]:
        return run_to_end(self.batch(), jobs)


def telea(target: torch.Tensor, hole: torch.Tensor, radius: int) -> torch.Tensor:
    """OpenCV's Telea at model resolution, in the engine's [-1, 1] units."""
    pixels = ((target.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    filled = cv2.inpaint(pixels, hole.numpy().astype(np.uint8), radius, cv2.INPAINT_TELEA)
    return torch.from_numpy(filled.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)


class ClassicalKind(ServedKind):
    model = ModelKind(
        name="classical",
        roles={},
        required=(),
        served=(),
        config=ClassicalConfig,  # type: ignore[arg-type]
        config_fields=("network",),
        build=lambda card, roles: {},
    )
    parameters = frozenset({"radius"})
    request = (RequestParameter("radius", int, "Telea's radius in model pixels (default: the card's).", 1, 3),)

    def params(self, sent: Mapping[str, Any], model: ModelFacts, limits: Limits) -> ClassicalParams:
        self.refuse_others(sent, model)
        return ClassicalParams(radius=sent.get("radius"))

    def job(self, target: torch.Tensor, hole: torch.Tensor, params: ClassicalParams) -> ClassicalJob:
        return ClassicalJob(target, hole, params)

    def runner(
        self, model: LoadedModel, device: torch.device, precision: str, options: StepOptions | None = None
    ) -> TeleaRunner:
        assert isinstance(model.config, ClassicalConfig)
        return TeleaRunner(model.config)

    def report(self, params: ClassicalParams, result: SearchResult) -> Report:
        return Report(params.start, 0, None)

    def flops(self, model: LoadedModel, params: ClassicalParams) -> float:
        return 0.0  # no network: OpenCV's work is not counted in the bench's %-of-peak


@pytest.fixture(scope="module")
def classical_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store of `classical/1` beside a tiny search model, with the kind registered while the module runs."""
    store = tmp_path_factory.mktemp("store")
    with registered(ClassicalKind()) as kind:
        card = {"network": ClassicalConfig().to_dict(), "dataset": {"name": "none (test)"}}
        save_model(store, "classical", "1", kind.model, {}, ClassicalConfig(), card)  # type: ignore[arg-type]
        save_tiny_search(store)
        yield store


@pytest.fixture(scope="module")
def classical_server(classical_store: Path) -> Iterator[httpx.Client]:
    with serving(classical_store, default_model="classical") as http:
        yield http


def _expected(image: bytes, mask: bytes, radius: int) -> np.ndarray:
    """What the service answers for Telea at `radius` (blend and edge fill off): the kind's own fill, finished."""
    upload = decode_upload(image, mask, 10**8)
    prepared = prepare(upload.model_image, upload.hole, RESOLUTION)
    fill = telea(prepared.target, prepared.hole, radius)
    return finish(upload.image, upload.hole, fill, blend="none", edge=None)


def test_the_store_lists_it_with_the_parameters_it_takes(classical_server: httpx.Client) -> None:
    models = {model["key"]: model for model in classical_server.get("/v1/models").json()["models"]}
    model = models["classical:1"]
    assert (model["kind"], model["parameters"], model["resolution"]) == ("classical", ["radius"], 32)
    assert models["tiny:1"]["parameters"] == ["iterations", "restarts", "init"]


def test_its_parameter_is_a_form_field_of_the_route(classical_store: Path) -> None:
    schema = create_app(test_settings(classical_store, default_model="classical")).openapi()
    body = schema["paths"]["/complete"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    fields = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"radius", "iterations", "restarts", "init", "image"} <= set(fields)
    assert fields["radius"]["anyOf"][0] == {"type": "integer", "minimum": 1.0}
    assert "Models of kind classical take it" in fields["radius"]["description"]
    assert "Models of kind search take it" in fields["iterations"]["description"]


def test_it_completes_through_the_pool_as_telea_at_model_resolution(
    classical_server: httpx.Client, faces: np.ndarray
) -> None:
    hole = center_hole(64, 64)
    image, mask = encode(damaged(faces[503], hole)), mask_png(hole)
    answer = classical_server.post(
        "/complete",
        files={"image": ("face.png", image), "mask": ("m.png", mask)},
        data={"blend": "none", "edge": "none"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model"], body["init"], body["iterations"], body["loss"]) == ("classical:1", "none", 0, None)
    served = decode(base64.b64decode(body["image"]))
    np.testing.assert_array_equal(served, _expected(image, mask, ClassicalConfig().radius))
    assert np.abs(served[hole].astype(int) - 128).mean() > 1.0  # the hole was filled, not left grey


def test_its_own_parameter_reaches_its_jobs(classical_server: httpx.Client, faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    image, mask = encode(damaged(faces[505], hole)), mask_png(hole)
    files = {"image": ("face.png", image), "mask": ("m.png", mask)}
    answer = classical_server.post("/complete", files=files, data={"radius": "9", "blend": "none", "edge": "none"})
    assert answer.status_code == 200, answer.text
    expected = _expected(image, mask, 9)
    assert not np.array_equal(expected, _expected(image, mask, ClassicalConfig().radius))  # the radius matters
    np.testing.assert_array_equal(decode(answer.content), expected)


def test_its_parameter_is_checked_and_refused_by_other_kinds(classical_server: httpx.Client, faces: np.ndarray) -> None:
    hole = center_hole(64, 64)
    files = {"image": ("face.png", encode(damaged(faces[506], hole))), "mask": ("m.png", mask_png(hole))}
    too_small = classical_server.post("/complete", files=files, data={"radius": "0"})
    assert too_small.status_code == 422
    assert too_small.headers["content-type"] == "application/problem+json"
    assert "radius" in too_small.text
    search = classical_server.post("/complete", files=files, data={"radius": "4", "model": "tiny"})
    assert search.status_code == 422
    assert "model tiny:1 (kind search) takes no radius" in search.json()["detail"]


def test_the_cli_takes_its_parameter_as_a_flag(classical_store: Path, faces: np.ndarray, tmp_path: Path) -> None:
    hole = center_hole(64, 64)
    image, mask = encode(damaged(faces[507], hole)), mask_png(hole)
    (tmp_path / "face.png").write_bytes(image)
    (tmp_path / "mask.png").write_bytes(mask)
    out = tmp_path / "out"
    argv = ["complete", str(tmp_path / "face.png"), "--masks", str(tmp_path / "mask.png"), "--out", str(out)]
    argv += ["--model", "classical", "--model-store", str(classical_store), "--radius", "7"]
    assert main([*argv, "--blend", "none", "--edge", "none", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(decode((out / "face.png").read_bytes()), _expected(image, mask, 7))


@pytest.mark.parametrize("field", ["iterations", "restarts", "init"])
def test_a_parameter_it_does_not_take_is_a_422_naming_it(
    classical_server: httpx.Client, faces: np.ndarray, field: str
) -> None:
    hole = center_hole(64, 64)
    files = {"image": ("face.png", encode(damaged(faces[504], hole))), "mask": ("m.png", mask_png(hole))}
    value = {"iterations": "3", "restarts": "2", "init": "random"}[field]
    answer = classical_server.post("/complete", files=files, data={field: value})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert f"model classical:1 (kind classical) takes no {field}" in answer.json()["detail"]
