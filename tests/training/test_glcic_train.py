"""`python -m training glcic` on real faces: all three phases, a loadable checkpoint, resume, DDP, CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO
from training.__main__ import main
from training.checkpoint import load_model, read_card, sha256_of
from training.glcic import GlcicConfig
from training.glcic_train import GlcicSettings, phase_at, train_glcic
from training.kinds import GLCIC

TINY = GlcicConfig(resolution=32, width=8, d_width=8, features=16)
TINY_FLAGS = ["--resolution", "32", "--width", "8", "--d-width", "8", "--features", "16"]


@pytest.fixture
def few_faces(tmp_path: Path, faces: np.ndarray) -> Path:
    path = tmp_path / "faces.npz"
    np.savez(path, images=faces[:48], filenames=np.array([f"face_{i}.jpg" for i in range(48)]))
    return path


def _settings(tmp_path: Path, data: Path, phases: tuple[int, int, int], **extra: object) -> GlcicSettings:
    return GlcicSettings(
        data=data,
        name="smoke",
        model_store=tmp_path / "store",
        run_dir=tmp_path / "run",
        network=TINY,
        phase_steps=phases,
        batch_size=6,
        precision="fp32",
        device="cpu",
        sample_every=2,
        state_every=2,
        holdout_fraction=0.25,
        show_progress=False,
        **extra,  # type: ignore[arg-type]
    )


def test_phase_at_counts_steps_across_phases() -> None:
    assert [phase_at(s, (2, 1, 2)) for s in range(1, 6)] == [
        "completion",
        "completion",
        "discriminator",
        "joint",
        "joint",
    ]
    assert phase_at(1, (0, 0, 3)) == "joint"
    with pytest.raises(ValueError, match="past the last phase"):
        phase_at(6, (2, 1, 2))


def test_smoke_run_of_every_phase_writes_a_loadable_glcic_checkpoint(tmp_path: Path, few_faces: Path) -> None:
    path = train_glcic(_settings(tmp_path, few_faces, (2, 2, 2)))
    assert path == tmp_path / "store" / "smoke" / "1"
    card = read_card(path)
    assert card["kind"] == "glcic" and card["network"] == TINY.to_dict()
    for entry in card["weights"].values():
        assert entry["sha256"] == sha256_of(path / entry["file"])
    training = card["training"]
    assert [training["phases"][p]["steps"] for p in ("completion", "discriminator", "joint")] == [2, 2, 2]
    assert all(training["phases"][p]["images_per_s"] > 0 for p in training["phases"])
    assert training["alpha"] == 0.0004 and training["masks"] == ["center", "random80", "half", "strokes", "blocks"]
    assert set(training["final_losses"]) == {"reconstruction", "discriminator", "adversarial"}
    held = card["dataset"]["held_out"]
    assert card["dataset"]["size"] == 48 and len(held) == card["dataset"]["held_out_size"] > 0

    loaded = load_model(path, roles=GLCIC.served)
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 8:24, 8:24] = 1
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        out = loaded.networks["completion"](image, hole)
    assert torch.equal(out[..., :8, :], image[..., :8, :])

    grid = np.asarray(Image.open(path / "samples.png"))
    rows = card["dataset"]["held_out_size"]
    assert grid.shape[:2] == (min(rows, 10) * 34 + 2, 3 * 34 + 2)  # original | damaged | completed, 2 px padding
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "final.png",
        "step_000002.png",
        "step_000004.png",
        "step_000006.png",
    ]
    assert (path / "loss_curve.png").stat().st_size > 1000


def test_resume_continues_in_the_phase_it_stopped_in(tmp_path: Path, few_faces: Path) -> None:
    train_glcic(_settings(tmp_path, few_faces, (2, 2, 1)))
    path = train_glcic(_settings(tmp_path, few_faces, (2, 2, 3), resume=True, version="2"))
    assert path is not None
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 7
    assert state["loss_steps"]["reconstruction"] == [1, 2, 5, 6, 7]
    assert state["loss_steps"]["adversarial"] == [5, 6, 7]
    assert read_card(path)["training"]["phases"]["joint"]["steps"] == 3


def test_cli_run_and_a_taken_version_refused_before_any_step(
    tmp_path: Path, few_faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "glcic", "--data", str(few_faces), "--name", "cli", "--model-store", str(tmp_path / "store"),
        "--run-dir", str(tmp_path / "run"), "--phase1-steps", "1", "--phase2-steps", "1", "--phase3-steps", "1",
        "--batch-size", "4", "--alpha", "0.001", "--reconstruction", "l1", "--no-progress", *TINY_FLAGS,
    ]  # fmt: skip
    assert main(args) == 0
    training = read_card(tmp_path / "store" / "cli" / "1")["training"]
    assert (training["alpha"], training["reconstruction"], training["batch_size"]) == (0.001, "l1", 4)
    capsys.readouterr()
    state_before = (tmp_path / "run" / "state.pt").stat().st_mtime_ns
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "run" / "state.pt").stat().st_mtime_ns == state_before


def test_cli_help_names_every_phase_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "training", "glcic", "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0
    for option in ("--phase1-steps", "--phase2-steps", "--phase3-steps", "--alpha", "--resume", "--precision"):
        assert option in result.stdout


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path: Path, few_faces: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "training", "glcic", "--data", str(few_faces), "--name", "ddp", "--phase1-steps", "1",
        "--phase2-steps", "1", "--phase3-steps", "1", "--batch-size", "4", *TINY_FLAGS,
        "--precision", "fp32", "--device", "cpu", "--model-store", str(tmp_path / "store"),
        "--run-dir", str(tmp_path / "run"), "--no-progress", "--holdout-fraction", "0.25",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-8000:]  # the ranks' own errors come before the launcher's
    loaded = load_model(tmp_path / "store" / "ddp" / "1")
    assert loaded.card["training"]["world_size"] == 2 and loaded.config == TINY
