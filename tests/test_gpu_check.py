"""scripts/gpu-check.sh cannot rot: its arguments, every command of its CUDA mode checked by the real parsers,
and (slow) its whole CPU mode end to end on a few real faces."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.__main__ import build_parser as app_parser
from app.bench.defaults import Side
from tests.conftest import REPO
from training.__main__ import build_parser as training_parser

SCRIPT = REPO / "scripts" / "gpu-check.sh"


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO, env=environment, timeout=timeout
    )


def _report_parser() -> argparse.ArgumentParser:
    spec = importlib.util.spec_from_file_location("gpu_check_report", REPO / "scripts" / "gpu_check_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser: argparse.ArgumentParser = module.build_parser()
    return parser


def test_the_script_is_valid_bash_and_refuses_bad_arguments_with_exit_2() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    help_text = _run("--help")
    assert help_text.returncode == 0 and "--dry-run" in help_text.stdout
    for args, message in [(("--bogus",), "unknown argument --bogus"), (("--device", "tpu"), "--device must be")]:
        result = _run(*args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_every_command_of_the_dry_run_parses_with_the_projects_own_parsers(device: str) -> None:
    """The CUDA mode's commands are checked here too, on a machine without a GPU, so a renamed flag fails CI."""
    result = _run("--dry-run", "--device", device)
    assert result.returncode == 0, result.stderr
    commands = [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]
    seen = set()
    for argv in commands:
        while argv[0] == "env" or "=" in argv[0]:  # env VAR=value ... prefixes
            argv = argv[1:]
        assert argv[0] == sys.executable, argv
        if argv[1:3] == ["-m", "torch.distributed.run"]:
            assert argv[argv.index("--nproc-per-node") + 1] == ("1" if device == "cuda" else "2")
            argv = [argv[0], *argv[argv.index("-m", 3) :]]
            seen.add("torchrun")
        if argv[1:3] == ["-m", "training"]:
            training_parser().parse_args(argv[3:])  # SystemExit(2) on a flag it does not know
            seen.add(f"training {argv[3]}")
        elif argv[1:3] == ["-m", "app"]:
            args = app_parser().parse_args(argv[3:])
            if args.defaults:
                assert all(Side.parse(side) for side in args.defaults.split(","))
            seen.add(f"app {argv[3]}")
        elif argv[1:3] == ["-m", "pytest"]:
            files = [arg for arg in argv[3:] if arg.endswith(".py")]
            assert set(files) >= {"tests/pool/test_cuda.py", "tests/engine/test_cuda_step.py"}, argv
            assert all((REPO / name).is_file() for name in files), argv
            seen.add("pytest")
        else:
            assert argv[1] == "scripts/gpu_check_report.py", argv
            _report_parser().parse_args(argv[2:])
            seen.add("report")
    assert seen == {
        "pytest", "app bench", "training train", "training encoder", "training glcic", "training bench", "torchrun",
        "report",
    }  # fmt: skip
    if device == "cuda":
        text = result.stdout
        assert "--http-clients 1\\,32\\,128" in text and "--device cuda:0" in text and "--precision fp16" in text


@pytest.mark.slow
def test_the_cpu_mode_runs_every_step_and_writes_its_report(tmp_path: Path, faces: np.ndarray) -> None:
    data = tmp_path / "faces.npz"
    np.savez(data, images=faces[:64], filenames=np.array([f"face_{i}.jpg" for i in range(64)]))
    out = tmp_path / "out"
    result = _run("--device", "cpu", "--data", str(data), "--out", str(out), env={"TMPDIR": str(tmp_path)}, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "engine.csv", "engine.png", "gpu-check.log", "http.csv", "http.png",
    ]  # fmt: skip
    report = (out / "README.md").read_text()
    for heading in ("## CUDA tests", "## Serving through HTTP", "## The search's iteration-level", "## Training"):
        assert heading in report
    assert "| `train-encoder` | auto | 2 | passed |" in report and "| `ddp-glcic` |" in report
    assert "failed" not in report and "skipped" not in report.split("## Steps")[1]
