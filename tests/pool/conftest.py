"""Pool test fixtures: a seeded tiny GAN, jobs that differ in everything, an event loop to await on."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from app.engine import SearchJob, SearchParams, SearchRunner, make_mask
from tests.conftest import TINY
from training.networks import Discriminator, Generator, recompute_batchnorm_stats

R = TINY.resolution


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and the 2-core test machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_gan() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    generator, discriminator = Generator(TINY), Discriminator(TINY)
    recompute_batchnorm_stats(generator, samples=256, batch_size=64)
    return generator.eval().requires_grad_(False), discriminator.eval().requires_grad_(False)


@pytest.fixture
def runner(tiny_gan: tuple[Generator, Discriminator]) -> SearchRunner:
    return SearchRunner(*tiny_gan, torch.device("cpu"))


def make_job(index: int, **params: float) -> SearchJob:
    """A distinct target, mask family and seed per index; no plateau stop unless asked."""
    target = torch.rand(3, R, R, generator=torch.Generator().manual_seed(1000 + index)) * 2 - 1
    kind = ("center", "strokes", "blocks", "half", "random80")[index % 5]
    hole = torch.from_numpy(make_mask(kind, R, np.random.default_rng(index)))
    settings: dict = {"iterations": 40, "restarts": 2, "seed": index, "patience": 100_000, **params}
    return SearchJob(target=target, hole=hole, params=SearchParams(**settings))


def pixels(image: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats to the 8-bit levels a client receives."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
