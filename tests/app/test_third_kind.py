"""A third model kind is one entry: OpenCV's Telea as a `classical` kind, served through the same pool.

Everything the kind means is in this file: its card's network config and (empty) weight roles, how its
jobs run on a worker, which request parameters it takes, what its answer reports and what a step costs.
Registered, it is written by the checkpoint writer, found by the store, loaded into the pool, listed by
`/v1/models` and answered by `POST /complete` on a real server, with no other file knowing its name.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import torch

from app.api.uploads import decode_upload
from app.engine.compose import finish, prepare
from app.engine.errors import EngineError
from app.engine.kinds import Limits, ModelFacts, Report, ServedKind, registered
from app.engine.search import SearchResult, check_job
from app.engine.stepping import StepOptions, run_to_end
from tests.app.conftest import center_hole, damaged, decode, encode, mask_png, serving
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
    """Nothing to choose: one slot for one step, no start."""

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
            self._done[key] = SearchResult(telea(job.target, job.hole, self.config.radius), 0.0, 0, 0.0)
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

    def params(self, sent: Mapping[str, Any], model: ModelFacts, limits: Limits) -> ClassicalParams:
        self.refuse_others(sent, model)
        return ClassicalParams()

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
def classical_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    store = tmp_path_factory.mktemp("store")
    with registered(ClassicalKind()) as kind:
        card = {"network": ClassicalConfig().to_dict(), "dataset": {"name": "none (test)"}}
        save_model(store, "classical", "1", kind.model, {}, ClassicalConfig(), card)  # type: ignore[arg-type]
        with serving(store, default_model="classical") as http:
            yield http


def test_the_store_lists_it_with_the_parameters_it_takes(classical_server: httpx.Client) -> None:
    (model,) = classical_server.get("/v1/models").json()["models"]
    assert (model["key"], model["kind"], model["parameters"], model["resolution"]) == (
        "classical:1",
        "classical",
        [],
        32,
    )


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
    upload = decode_upload(image, mask, 10**8)
    prepared = prepare(upload.model_image, upload.hole, RESOLUTION)
    fill = telea(prepared.target, prepared.hole, ClassicalConfig().radius)
    expected = finish(upload.image, upload.hole, fill, blend="none", edge=None)
    served = decode(base64.b64decode(body["image"]))
    np.testing.assert_array_equal(served, expected)
    assert np.abs(served[hole].astype(int) - 128).mean() > 1.0  # the hole was filled, not left grey


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
