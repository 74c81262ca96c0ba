"""Settings: environment parsing, and start-up refusal of unsafe values with a one-line message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings, describe_errors


@pytest.fixture
def store(make_tiny_store: Callable[..., Path], clean_env: None) -> Path:
    return make_tiny_store(("faces",))


def test_defaults_and_environment(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGCOMP_MODEL_STORE", str(store))
    monkeypatch.setenv("IMGCOMP_DEVICES", "cpu, cpu")
    monkeypatch.setenv("IMGCOMP_PORT", "9001")
    monkeypatch.setenv("IMGCOMP_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("IMGCOMP_TORCH_THREADS", "1")
    settings = Settings()
    assert settings.torch_threads == 1
    assert settings.devices == ("cpu", "cpu")
    assert (settings.port, settings.host, settings.log_level) == (9001, "127.0.0.1", "warning")
    # unset budgets: each model's start picks its measured defaults (app.engine.search.DEFAULTS)
    assert (settings.default_model, settings.precision, settings.default_iterations) == ("faces", "auto", None)


def test_auto_devices_resolve(store: Path) -> None:
    devices = Settings(model_store=store).devices
    assert devices == ("cpu",) or all(device.startswith("cuda:") for device in devices)


def _refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)  # type: ignore[arg-type]
    lines = describe_errors(caught.value)
    assert len(lines) == 1 and "\n" not in lines[0]
    return lines[0]


def test_unknown_device(store: Path) -> None:
    assert _refusal(model_store=store, devices="tpu:0").startswith("IMGCOMP_DEVICES: unknown device 'tpu:0'")
    assert "is not visible" in _refusal(model_store=store, devices="cuda:99")


def test_missing_or_empty_store(tmp_path: Path, clean_env: None) -> None:
    assert "is not a folder" in _refusal(model_store=tmp_path / "nowhere")
    assert "holds no model" in _refusal(model_store=tmp_path)


def test_default_model_must_exist(store: Path) -> None:
    assert "set IMGCOMP_DEFAULT_MODEL" in _refusal(model_store=store, default_model="fruit")


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"precision": "fp8"}, "IMGCOMP_PRECISION"),
        ({"precision": "fp16", "devices": "cpu"}, "fp16 needs CUDA"),
        ({"port": 0}, "IMGCOMP_PORT"),
        ({"queue_size": 0}, "IMGCOMP_QUEUE_SIZE"),
        ({"torch_threads": 0}, "IMGCOMP_TORCH_THREADS"),
        ({"default_iterations": 5000}, "exceeds max_iterations"),
    ],
)
def test_unsafe_values(store: Path, values: dict[str, object], fragment: str) -> None:
    assert fragment in _refusal(model_store=store, **values)


def test_serve_refuses_with_one_line(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.__main__ import main

    monkeypatch.chdir(tmp_path)  # no ./model_store here
    assert main(["serve"]) == 2
    assert "IMGCOMP_MODEL_STORE" in capsys.readouterr().err


def test_auto_precision_is_bf16_only_where_the_device_has_it() -> None:
    import torch

    from app.engine.precision import native_precision, resolve

    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_precision(torch.device("cpu")) == ("bf16" if native else "fp32")
    assert resolve("auto", torch.device("cpu")) == native_precision(torch.device("cpu"))
    assert resolve("fp32", torch.device("cpu")) == "fp32"
