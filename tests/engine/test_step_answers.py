"""fp32 searches answer bit for bit what they answered before the step lost its per-step host waits.

`step_scenarios.py` runs fixed searches on a tiny seeded model; it runs once in the engine of
commit ccc07c4 (exported from git history) and once in this tree, and the answers (images,
losses, iterations) must be equal: with the default step, with plateaus read every step and
every third, and with the table padded to fixed sizes (padding rows must not move a real row).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO, TINY
from tests.history import export
from training.networks import Discriminator, Encoder, EncoderConfig, Generator, recompute_batchnorm_stats

REFERENCE = "ccc07c4"  # main before the step's host bookkeeping
SCRIPT = Path(__file__).with_name("step_scenarios.py")


def _answers(tree: Path, nets: Path, out: Path, extra: dict[str, object] | None = None) -> dict[str, np.ndarray]:
    command = [sys.executable, str(SCRIPT), str(nets), str(out)] + ([json.dumps(extra)] if extra else [])
    subprocess.run(command, cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}, check=True)
    with np.load(out) as saved:
        return {name: saved[name] for name in saved.files}


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    recompute_batchnorm_stats(generator, samples=256, batch_size=64)
    torch.manual_seed(3)
    encoder = Encoder(TINY, EncoderConfig(width=8, groups=4))
    path = tmp_path_factory.mktemp("nets") / "tiny.pt"
    torch.save({"g": generator.state_dict(), "d": discriminator.state_dict(), "e": encoder.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def reference(nets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("reference")
    return _answers(export(REFERENCE, folder), nets, folder / "answers.npz")


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [None, {"plateau_every": 1}, {"plateau_every": 3, "sizes": [1, 2, 4, 8, 16]}, {"sizes": [3, 64]}],
    ids=["defaults", "plateaus-every-step", "padded-every-third", "padded-odd-sizes"],
)
def test_fp32_answers_are_bit_identical_to_the_reference(
    nets: Path, reference: dict[str, np.ndarray], tmp_path: Path, extra: dict[str, object] | None
) -> None:
    ours = _answers(REPO, nets, tmp_path / "ours.npz", extra)
    assert np.array_equal(ours["iterations"], reference["iterations"])
    assert np.array_equal(ours["loss"], reference["loss"])
    assert np.array_equal(ours["generated"], reference["generated"])
