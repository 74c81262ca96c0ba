"""Real training smoke runs on real images: checkpoint, grids, resume, torchrun, CLI errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO, TINY
from training.checkpoint import load_checkpoint
from training.train import TrainSettings, train


@pytest.fixture
def few_faces(tmp_path: Path, faces: np.ndarray) -> Path:
    path = tmp_path / "faces.npz"
    np.savez(path, images=faces[:48], filenames=np.array([f"face_{i}.jpg" for i in range(48)]))
    return path


def _settings(tmp_path: Path, data: Path, steps: int, **extra: object) -> TrainSettings:
    return TrainSettings(
        data=data,
        name="smoke",
        model_store=tmp_path / "store",
        run_dir=tmp_path / "run",
        network=TINY,
        steps=steps,
        batch_size=8,
        precision="fp32",
        device="cpu",
        sample_every=2,
        state_every=2,
        holdout_fraction=0.25,
        show_progress=False,
        **extra,  # type: ignore[arg-type]
    )


def test_smoke_run_writes_a_loadable_checkpoint_and_pictures(tmp_path: Path, few_faces: Path) -> None:
    path = train(_settings(tmp_path, few_faces, steps=4))
    assert path == tmp_path / "store" / "smoke" / "1"
    checkpoint = load_checkpoint(path)
    card = checkpoint.card
    assert card["training"]["steps"] == 4 and card["training"]["device"] == "cpu"
    held = card["dataset"]["held_out"]
    assert card["dataset"]["size"] == 48 and len(held) == card["dataset"]["held_out_size"] > 0
    samples = np.asarray(Image.open(path / "samples.png"))
    assert samples.shape[1] > 8 * TINY.resolution and len(np.unique(samples.reshape(-1, 3), axis=0)) > 100
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "final_eval_mode.png",
        "step_000002.png",
        "step_000004.png",
    ]
    assert (path / "loss_curve.png").stat().st_size > 1000


def test_resume_continues_the_step_count(tmp_path: Path, few_faces: Path) -> None:
    train(_settings(tmp_path, few_faces, steps=2))
    path = train(_settings(tmp_path, few_faces, steps=4, resume=True, overwrite=True))
    assert path is not None
    card = load_checkpoint(path).card
    assert card["training"]["steps"] == 4
    import torch

    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 4 and len(state["d_losses"]) == 4


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )


def test_cli_help_explains_every_option() -> None:
    result = _cli("train", "--help")
    assert result.returncode == 0
    for option in ("--data", "--steps", "--precision", "--resume", "--resolution", "--licence", "--holdout-fraction"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "does/not/exist"], "does not exist"),
        (["--resolution", "48"], "resolution 48 is not supported"),
    ],
)
def test_cli_user_errors_are_one_line(tmp_path: Path, few_faces: Path, args: list[str], message: str) -> None:
    base = ["train", "--data", str(few_faces), "--name", "x", "--model-store", str(tmp_path), "--steps", "1"]
    result = _cli(*base, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path: Path, few_faces: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "training", "train", "--data", str(few_faces), "--name", "ddp", "--steps", "3",
        "--batch-size", "4", "--resolution", "32", "--z-dim", "16", "--g-width", "8", "--d-width", "8",
        "--precision", "fp32", "--device", "cpu", "--model-store", str(tmp_path / "store"),
        "--run-dir", str(tmp_path / "run"), "--no-progress", "--holdout-fraction", "0.25",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-8000:]  # the ranks' own errors come before the launcher's
    checkpoint = load_checkpoint(tmp_path / "store" / "ddp" / "1")
    assert checkpoint.card["training"]["world_size"] == 2
    assert checkpoint.config == TINY


def test_a_taken_version_is_refused_before_the_first_step(tmp_path: Path, few_faces: Path) -> None:
    """A million steps asked for: refused in seconds, with nothing trained, sampled or written."""
    first = train(_settings(tmp_path, few_faces, steps=2))
    assert first is not None
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    base = ["train", "--data", str(few_faces), "--name", "smoke", "--model-store", str(tmp_path / "store")]
    result = _cli(*base, "--run-dir", str(tmp_path / "run2"), "--steps", "1000000", "--device", "cpu", "--no-progress")
    assert result.returncode == 2
    assert "already exists: pick another --version or pass --overwrite" in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no run folder, no state
