"""Fixtures shared by every test package: tiny checkpoints built on the spot, the shared real data."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine import SearchRunner
from training.checkpoint import read_card, save_checkpoint
from training.networks import Discriminator, Generator, NetworkConfig, recompute_batchnorm_stats

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IMGCOMP_SHARED_DATA", REPO.parent / "shared" / "data"))
FACES_NPZ = SHARED_DATA / "utkface_crop_part1_64.npz"
FRUITS_NPZ = SHARED_DATA / "fruits360_64.npz"
SHIPPED_STORE = REPO / "model_store"

TINY = NetworkConfig(resolution=32, z_dim=16, g_width=8, d_width=8)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and on a shared 2-core machine two
    spinning OpenMP threads per process make each step up to 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_config() -> NetworkConfig:
    return TINY


@pytest.fixture(scope="module")
def tiny_gan() -> tuple[Generator, Discriminator]:
    """An untrained, seeded tiny G/D with eval-mode BatchNorm statistics that match its outputs."""
    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    recompute_batchnorm_stats(generator, samples=256, batch_size=64)
    return generator.eval().requires_grad_(False), discriminator.eval().requires_grad_(False)


@pytest.fixture
def runner(tiny_gan: tuple[Generator, Discriminator]) -> SearchRunner:
    return SearchRunner(*tiny_gan, torch.device("cpu"))


@pytest.fixture
def make_tiny_store(tmp_path: Path) -> Callable[..., Path]:
    """Write untrained-but-valid tiny checkpoints into a fresh model store; returns the store root."""

    def make(names: tuple[str, ...] = ("tiny",), config: NetworkConfig = TINY, seed: int = 0) -> Path:
        root = tmp_path / "model_store"
        for index, name in enumerate(names):
            torch.manual_seed(seed + index)
            generator, discriminator = Generator(config), Discriminator(config)
            recompute_batchnorm_stats(generator, samples=256, batch_size=64)
            card = {"dataset": {"name": "none (test)", "licence": "n/a", "held_out": []}, "training": {"steps": 0}}
            save_checkpoint(root, name, "1", generator, discriminator.eval(), config, card)
        return root

    return make


def held_out_indices(model: Path, count: int) -> list[int]:
    """The first `count` faces of FACES_NPZ that the model version at `model` held out of its training."""
    held_out = set(read_card(model)["dataset"]["held_out"])
    with np.load(FACES_NPZ) as archive:
        return [i for i, name in enumerate(archive["filenames"]) if str(name) in held_out][:count]


@pytest.fixture(scope="session")
def faces() -> np.ndarray:
    """Real UTKFace crops, (N, 64, 64, 3) uint8, from ../shared/data."""
    if not FACES_NPZ.exists():
        pytest.fail(f"{FACES_NPZ} is missing: the tests read the shared data set beside the repository")
    with np.load(FACES_NPZ) as archive:
        return archive["images"]
