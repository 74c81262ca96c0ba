"""`python -m app serve` refuses a broken model folder of any kind with one line naming it, before serving."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from app.engine.onepass import OnePassRunner
from app.engine.runner import SearchRunner
from app.loading import load_runners
from app.store import ModelStore
from tests.app.conftest import center_hole, damaged, encode, free_port, mask_png, serve_env, serve_subprocess
from tests.app.glcic_store import TINY_GLCIC, save_tiny_glcic
from tests.conftest import REPO
from training.checkpoint import sha256_of
from training.glcic import CompletionNetwork


def _edit_card(folder: Path, **changes: object) -> None:
    card = json.loads((folder / "model.json").read_text())
    card.update(changes)
    (folder / "model.json").write_text(json.dumps(card))


def _unknown_kind(folder: Path) -> str:
    _edit_card(folder, kind="diffusion")
    return f"{folder}/model.json is of kind 'diffusion'; this code knows search, glcic, framing"


def _no_completion(folder: Path) -> str:
    (folder / "completion.safetensors").unlink()
    return f"{folder}/completion.safetensors is missing"


def _no_local_discriminator(folder: Path) -> str:
    (folder / "local_discriminator.safetensors").unlink()  # not served, but a folder is whole or refused
    return f"{folder}/local_discriminator.safetensors is missing"


def _wrong_shape(folder: Path) -> str:
    """A wider network's weights with a matching sha256: only the shape check can catch them."""
    wider = CompletionNetwork(type(TINY_GLCIC)(**{**TINY_GLCIC.__dict__, "width": 16}))
    weights = folder / "completion.safetensors"
    save_file({k: v.contiguous() for k, v in wider.state_dict().items()}, str(weights))
    card = json.loads((folder / "model.json").read_text())
    card["weights"]["completion"]["sha256"] = sha256_of(weights)
    (folder / "model.json").write_text(json.dumps(card))
    return f"{weights} does not fit the network described in model.json"


@pytest.mark.parametrize("damage", [_unknown_kind, _no_completion, _no_local_discriminator, _wrong_shape])
def test_a_broken_glcic_folder_stops_serve_with_one_line_naming_it(
    make_tiny_store: Callable[..., Path], damage: Callable[[Path], str]
) -> None:
    store = make_tiny_store(("tiny",))
    expected = damage(save_tiny_glcic(store))
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        cwd=REPO,
        env=serve_env(store, free_port()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"cannot serve {store}: {expected}"
    assert result.stdout == ""


def test_serve_answers_with_a_glcic_model_from_the_environment(
    make_tiny_store: Callable[..., Path], faces: np.ndarray
) -> None:
    store = make_tiny_store(("tiny",))
    save_tiny_glcic(store)
    hole = center_hole(64, 64)
    files = {"image": ("face.png", encode(damaged(faces[510], hole))), "mask": ("m.png", mask_png(hole))}
    with serve_subprocess(store) as (_, url), httpx.Client(base_url=url, timeout=30) as http:
        answer = http.post("/complete", files=files, data={"model": "tiny-glcic"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Model"] == "tiny-glcic:1" and answer.headers["X-Iterations"] == "0"


def test_the_store_loads_each_version_by_kind(make_tiny_store: Callable[..., Path]) -> None:
    store = make_tiny_store(("tiny",))
    save_tiny_glcic(store)
    models = ModelStore.discover(store, "tiny")
    models.verify()
    (runners,) = load_runners(models.entries(), ["cpu"], "fp32")
    assert isinstance(runners["tiny:1"], SearchRunner) and isinstance(runners["tiny-glcic:1"], OnePassRunner)
    glcic = models.resolve("tiny-glcic")
    assert (glcic.kind, glcic.served.parameters, glcic.resolution) == ("glcic", frozenset(), 32)
    # a served one-pass model holds its completion network only: the discriminators stay on disk
    assert list(glcic.load_served(torch.device("cpu")).networks) == ["completion"]
