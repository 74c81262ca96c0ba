"""How a device steps: padded sizes, plateau reads, warm-up and CUDA determinism as settings, and the settings
that cannot work refused at start-up with one line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from app.config import Settings, describe_errors
from app.engine import SearchRunner
from app.engine.batch import SearchBatch
from app.engine.stepping import PLATEAU_EVERY, StepOptions
from app.loading import load_runners
from app.reload import prepare_reload
from app.store import ModelStore
from tests.app.conftest import free_port, serve_env, serving
from tests.conftest import REPO
from training.networks import Discriminator, Generator


@pytest.fixture
def store(make_tiny_store: Callable[..., Path], clean_env: None) -> Path:
    return make_tiny_store(("tiny",))


def _settings(store: Path, **values: object) -> Settings:
    return Settings(**{"model_store": store, "default_model": "tiny", "devices": "cpu", **values})  # type: ignore[arg-type]


def _refusal(store: Path, **values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        _settings(store, **values)
    lines = describe_errors(caught.value)
    assert len(lines) == 1 and "\n" not in lines[0]
    return lines[0]


def test_auto_pads_and_warms_on_cuda_only(store: Path) -> None:
    settings = _settings(store, slots_per_device=48)
    assert settings.step_options("cpu") == StepOptions(sizes=(), plateau_every=PLATEAU_EVERY, warm=False)
    assert settings.step_options("cuda:0") == StepOptions(sizes=(1, 2, 4, 8, 16, 32, 48), warm=True)
    chosen = _settings(store, step_sizes="1, 4,16", warmup="on", plateau_every=1)
    assert chosen.step_options("cpu") == StepOptions(sizes=(1, 4, 16), plateau_every=1, warm=True)
    assert _settings(store, step_sizes="none", warmup="off").step_options("cuda:0") == StepOptions(warm=False)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ("4,2", "ascending"),
        ("0,2", "positive"),
        ("1,two", "not a list of sizes"),
        ("1,8,128", "IMGCOMP_STEP_SIZES pads a step to 128 slots, above IMGCOMP_SLOTS_PER_DEVICE 64"),
    ],
)
def test_sizes_that_cannot_work_are_refused(store: Path, sizes: str, message: str) -> None:
    assert message in _refusal(store, step_sizes=sizes)


def test_several_devices_get_a_process_each_unless_one_is_meant(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _settings(store, devices="cuda:0,cuda:1").process_per_device()
    assert not _settings(store, devices="cuda:0,cuda:1", several_devices=True).process_per_device()
    assert not _settings(store, devices="cuda:1").process_per_device()
    assert _settings(store, devices="cpu,cpu").process_per_device()
    assert not _settings(store, devices="cpu").process_per_device()


def _serve(store: Path, command: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    env = serve_env(store, free_port(), **settings)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_serve_refuses_a_padded_size_above_the_slot_budget_with_one_line(store: Path) -> None:
    result = _serve(store, [sys.executable, "-m", "app", "serve"], step_sizes="1,2,128", slots_per_device="64")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "invalid setting: IMGCOMP_STEP_SIZES pads a step to 128 slots, above IMGCOMP_SLOTS_PER_DEVICE 64: "
        "no size may exceed the slots a device holds"
    )
    assert result.stdout == ""


def test_warm_up_steps_every_padded_size(
    tiny_gan: tuple[Generator, Discriminator], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    step = SearchBatch.step

    def counted(batch: SearchBatch) -> list[int]:
        seen.append(batch.live_slots)
        return step(batch)

    monkeypatch.setattr(SearchBatch, "step", counted)
    SearchRunner(*tiny_gan, torch.device("cpu"), options=StepOptions(sizes=(1, 3, 70))).warm()
    assert sorted(set(seen)) == [1, 3, 70]  # 70 slots: a job of 64 restarts and one of 6


def test_runners_warm_up_before_they_are_handed_out_and_before_readyz(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmed: list[tuple[int, ...]] = []
    monkeypatch.setattr(SearchRunner, "warm", lambda runner: warmed.append(runner.options.sizes))
    entries = ModelStore.discover(store, "tiny").entries()
    options = [StepOptions(sizes=(1, 2), warm=True), StepOptions(sizes=(4,))]
    runners = load_runners(entries, ["cpu", "cpu"], "fp32", None, options)
    assert warmed == [(1, 2)] and [r["tiny:1"].options for r in runners] == options  # type: ignore[attr-defined]
    warmed.clear()
    with serving(store, warmup="on", step_sizes="1,2") as http:
        assert warmed == [(1, 2)]  # start-up warmed the one version on the one device before it was ready
        assert http.get("/readyz").status_code == 200


def test_a_reload_warms_up_its_new_versions_before_they_serve(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warmed: list[tuple[int, ...]] = []
    monkeypatch.setattr(SearchRunner, "warm", lambda runner: warmed.append(runner.options.sizes))
    settings = _settings(store, warmup="on", step_sizes="1,2", devices="cpu,cpu")
    prepared = prepare_reload(settings, ModelStore.discover(store, "tiny"), served=set())
    assert [entry.key for entry in prepared.added] == ["tiny:1"]
    assert warmed == [(1, 2), (1, 2)]  # on both workers, before the reload is applied
