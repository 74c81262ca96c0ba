"""`python -m training encoder` on a tiny model and real faces: a new version with G, D and E, resume, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.__main__ import main
from training.checkpoint import load_checkpoint, read_card
from training.encoder import EncoderSettings, train_encoder
from training.networks import EncoderConfig


@pytest.fixture
def tiny_faces(tmp_path: Path, faces: np.ndarray) -> Path:
    """48 real faces at the tiny model's 32x32, named so that the card can hold some out."""
    small = np.stack([np.asarray(Image.fromarray(face).resize((32, 32), Image.Resampling.BOX)) for face in faces[:48]])
    path = tmp_path / "faces32.npz"
    np.savez(path, images=small, filenames=np.array([f"face_{i}.jpg" for i in range(48)]))
    return path


@pytest.fixture
def store(make_tiny_store: Callable[..., Path]) -> Path:
    root = make_tiny_store(("tiny",))
    card_path = root / "tiny" / "1" / "model.json"
    card = json.loads(card_path.read_text())
    card["dataset"]["held_out"] = [f"face_{i}.jpg" for i in range(40, 48)]  # the card is outside the weights' sha256
    card_path.write_text(json.dumps(card))
    return root


def _settings(store: Path, data: Path, tmp_path: Path, steps: int, **extra: object) -> EncoderSettings:
    values: dict = {
        "model": "tiny",
        "data": data,
        "model_store": store,
        "run_dir": tmp_path / "run",
        "encoder": EncoderConfig(width=8, groups=4),
        "steps": steps,
        "batch_size": 4,
        "precision": "fp32",
        "device": "cpu",
        "sample_every": 2,
        "state_every": 2,
        "show_progress": False,
    }
    return EncoderSettings(**(values | extra))


def test_encoder_run_writes_a_new_version_beside_the_old(store: Path, tiny_faces: Path, tmp_path: Path) -> None:
    before = {p.name: p.read_bytes() for p in (store / "tiny" / "1").iterdir()}
    path = train_encoder(_settings(store, tiny_faces, tmp_path, steps=3))
    assert path == store / "tiny" / "2"
    assert {p.name: p.read_bytes() for p in (store / "tiny" / "1").iterdir()} == before  # the old version is untouched
    checkpoint = load_checkpoint(path)
    assert checkpoint.encoder is not None
    card = read_card(path)
    assert card["derived_from"] == "tiny:1" and card["encoder"]["training"]["steps"] == 3
    assert card["encoder"]["training"]["train_size"] == 40  # the card's held-out faces are never trained on
    assert card["dataset"]["held_out"] == read_card(store / "tiny" / "1")["dataset"]["held_out"]
    grid = Image.open(path / "encoder_samples.png")
    assert grid.size[0] > grid.size[1] / 3  # four columns: original, damaged, guess, pasted
    assert (tmp_path / "run" / "samples" / "step_000002.png").is_file()
    assert (path / "encoder_loss_curve.png").read_bytes().startswith(b"\x89PNG")


def test_resume_continues_where_the_state_was(store: Path, tiny_faces: Path, tmp_path: Path) -> None:
    first = _settings(store, tiny_faces, tmp_path, steps=2, version="5")
    train_encoder(first)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 2 and len(state["losses"]["latent"]) == 2
    path = train_encoder(_settings(store, tiny_faces, tmp_path, steps=4, version="6", resume=True))
    card = read_card(path)
    assert card["encoder"]["training"]["steps"] == 4
    assert len(torch.load(tmp_path / "run" / "state.pt", weights_only=True)["losses"]["latent"]) == 4


def _cli(store: Path, *argv: str) -> list[str]:
    return ["encoder", "--model-store", str(store), "--steps", "2", "--batch-size", "4", "--width", "8", *argv]


def test_cli_errors_are_one_line(
    store: Path, tiny_faces: Path, faces: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_cli(store, "--model", "nope", "--data", str(tiny_faces))) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: there is no model 'nope' in {store}: train it first (python -m training train)"
    )
    big = tmp_path / "faces64.npz"
    np.savez(big, images=faces[:8])
    assert main(_cli(store, "--model", "tiny", "--data", str(big))) == 2
    err = capsys.readouterr().err.strip()
    assert "holds 64x64 images but tiny:1 is a 32x32 model" in err and "\n" not in err
    assert main(_cli(store, "--model", "tiny", "--data", str(tiny_faces), "--version", "1")) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in (store / "tiny").iterdir()) == ["1"]  # nothing written, nothing overwritten
