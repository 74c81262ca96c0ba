"""An earlier commit's `app` and `training`, exported from this clone's git history, for answer-for-answer tests.

A test that says "answers exactly what commit X answered" runs X's code in a subprocess from the
exported tree; a clone without that commit (a shallow one) skips the test and says why.
"""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO


def export(commit: str, into: Path, name: str = "reference") -> Path:
    """`app` and `training` as they were at `commit`, under `into/name` (which becomes the subprocess's PYTHONPATH)."""
    archive = into / f"{name}.tar"
    made = subprocess.run(
        ["git", "-C", str(REPO), "archive", "-o", str(archive), commit, "app", "training"],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"commit {commit[:7]} is not in this clone's history: {made.stderr.strip()}")
    with tarfile.open(archive) as tar:
        tar.extractall(into / name, filter="data")
    return into / name
