"""The page's files travel inside the wheel the Docker image installs, not only in a source checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from app.web.routes import STATIC_DIR
from tests.conftest import REPO


def test_wheel_carries_the_static_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for part in ("app", "training"):  # what the Dockerfile's wheel stage copies
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=source,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("imgcomp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"app/web/static/{path.name}" for path in STATIC_DIR.iterdir()}
    assert shipped and shipped <= names, shipped - names
