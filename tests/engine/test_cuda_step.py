"""On CUDA the step makes the host wait only where it reads plateaus or answers: torch's sync debug mode raises
at any other synchronising call. Padding and warm-up run there too.

Skipped without CUDA (the CPU stand-in for the same count is `test_host_syncs.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch

from app.engine import SearchRunner
from app.engine.onepass import OnePassJob, OnePassRunner
from app.engine.search import SearchJob, SearchParams
from app.engine.stepping import StepOptions
from tests.conftest import TINY
from tests.pool.conftest import make_job
from training.glcic import CompletionNetwork, GlcicConfig
from training.networks import Discriminator, Encoder, EncoderConfig, Generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICE = torch.device("cuda:0")
EVERY = 8


@pytest.fixture(scope="module")
def tiny_encoder() -> Encoder:
    torch.manual_seed(3)
    return Encoder(TINY, EncoderConfig(width=8, groups=4)).eval().requires_grad_(False)


@contextmanager
def no_waits(on: bool) -> Iterator[None]:
    """A synchronising call inside raises (where `on`)."""
    torch.cuda.set_sync_debug_mode("error" if on else "default")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def _jobs() -> list[SearchJob]:
    """Random starts with and without the prior beside an encoder start: every path of the step."""
    jobs = [make_job(index, iterations=40, restarts=2, prior_weight=0.003 * (index % 2)) for index in range(3)]
    guessed = make_job(3, iterations=40, restarts=1)
    return [*jobs, replace(guessed, params=SearchParams(iterations=40, restarts=1, seed=3, init="encoder"))]


def test_steps_between_reads_never_wait_for_the_device(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder
) -> None:
    options = StepOptions(sizes=(1, 2, 4, 8, 16), plateau_every=EVERY)
    batch = SearchRunner(*tiny_gan, DEVICE, "fp32", tiny_encoder, options).batch()
    for job in _jobs():
        batch.add(job)
    for step in range(1, 2 * EVERY + 1):  # the admission, the encoder and the padding are in step 1
        with no_waits(step % EVERY != 0):
            assert batch.step() == []


def test_padding_on_cuda_stays_close_to_the_exact_table(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder
) -> None:
    """cuDNN picks kernels per batch size, so only closeness is asserted on CUDA (the CPU is bit for bit)."""
    exact = SearchRunner(*tiny_gan, DEVICE, "fp32", tiny_encoder).run(_jobs())
    padded = SearchRunner(*tiny_gan, DEVICE, "fp32", tiny_encoder, StepOptions(sizes=(16, 64))).run(_jobs())
    for one, other in zip(exact, padded, strict=True):
        assert one.iterations == other.iterations == 40
        assert (one.generated - other.generated).abs().mean() < 0.02  # 2.5 levels of 255


def test_warm_up_runs_every_size(tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder) -> None:
    SearchRunner(*tiny_gan, DEVICE, "bf16", tiny_encoder, StepOptions(sizes=(1, 2, 4, 70), warm=True)).warm()


def test_one_pass_padding_and_warm_up_on_cuda() -> None:
    """The one-pass table pads and warms like the search's: close to the exact batch under bf16 autocast."""
    torch.manual_seed(0)
    network = CompletionNetwork(GlcicConfig(resolution=32, width=8, d_width=8, features=16))
    holes = torch.zeros(3, 32, 32, dtype=torch.bool)
    holes[:, 8:24, 8:24] = True
    jobs = [OnePassJob(torch.rand(3, 32, 32) * 2 - 1, hole) for hole in holes]
    exact = OnePassRunner(network, DEVICE, "bf16").run(jobs)
    padded = OnePassRunner(network, DEVICE, "bf16", StepOptions(sizes=(1, 4, 16), warm=True))
    padded.warm()
    for one, other in zip(exact, padded.run(jobs), strict=True):
        assert (one.generated - other.generated).abs().mean() < 0.02
