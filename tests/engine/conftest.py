"""Engine test fixtures: a seeded tiny GAN and a CPU that is not oversubscribed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from app.engine import SearchRunner
from tests.conftest import TINY
from training.networks import Discriminator, Generator, recompute_batchnorm_stats


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and on a shared 2-core machine two
    spinning threads per process make each step up to 100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
