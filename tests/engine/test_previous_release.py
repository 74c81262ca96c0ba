"""`init=random` answers exactly what the release before the encoder answered.

The previous release's `app` and `training` are exported from git history into a
temporary folder and run in a subprocess on the same shipped model, photos and
masks; the answers must agree bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine import SearchJob, SearchParams, SearchRunner, make_mask, prepare
from tests.conftest import FACES_NPZ, SHIPPED_STORE
from tests.history import export
from training.checkpoint import load_checkpoint

PREVIOUS_RELEASE = "efd5b82d9f4664a92a80e6c6e19c35ef08a94674"  # main before the encoder start
MODEL = SHIPPED_STORE / "faces" / "1"
BUDGET = {"iterations": 30, "restarts": 2, "seed": 11}

# runs inside the previous release: its SearchParams has no `init`
SCRIPT = """
import sys, numpy as np, torch
from app.engine import SearchJob, SearchParams, SearchRunner, make_mask, prepare
from training.checkpoint import load_checkpoint
torch.set_num_threads(1)
model, faces_npz, out = sys.argv[1:4]
checkpoint = load_checkpoint(model)
faces = np.load(faces_npz)["images"][:3]
jobs = []
for index, kind in enumerate(("center", "strokes", "half")):
    hole = make_mask(kind, 64, np.random.default_rng(index))
    prepared = prepare(faces[index], hole, 64)
    jobs.append(SearchJob(prepared.target, prepared.hole, SearchParams(iterations=30, restarts=2, seed=11)))
runner = SearchRunner(checkpoint.generator, checkpoint.discriminator, torch.device("cpu"), "fp32")
np.save(out, torch.stack([result.generated for result in runner.run(jobs)]).numpy())
"""


@pytest.mark.slow
def test_random_start_is_bit_identical_to_the_previous_release(tmp_path: Path) -> None:
    previous = export(PREVIOUS_RELEASE, tmp_path, "previous")
    out = tmp_path / "previous.npy"
    subprocess.run(
        [sys.executable, "-c", SCRIPT, str(MODEL), str(FACES_NPZ), str(out)],
        cwd=previous,
        env={"PYTHONPATH": str(previous), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    checkpoint = load_checkpoint(MODEL)
    faces = np.load(FACES_NPZ)["images"][:3]
    jobs = []
    for index, kind in enumerate(("center", "strokes", "half")):
        hole = make_mask(kind, 64, np.random.default_rng(index))
        prepared = prepare(faces[index], hole, 64)
        jobs.append(SearchJob(prepared.target, prepared.hole, SearchParams(init="random", **BUDGET)))
    runner = SearchRunner(checkpoint.generator, checkpoint.discriminator, torch.device("cpu"), "fp32")
    ours = torch.stack([result.generated for result in runner.run(jobs)])
    assert torch.equal(ours, torch.from_numpy(np.load(out)))
