"""The step makes the host wait for the device once per plateau read and once per answer, not every step.

Counted with `syncs.HostSyncs`, which records on the CPU every call that would make the host wait
for a CUDA device. On ccc07c4 the first case counted 65 waits in 40 steps (a `bool(done.any())`
every step, then three reads and a copy per finished row) and 24 in its four `add`s (five blocking
copies per job); a table mixing priors added a blocking index copy every step (100 in 40 steps).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from app.engine import SearchRunner
from app.engine.batch import SearchBatch
from app.engine.search import SearchJob
from app.engine.stepping import StepOptions
from tests.conftest import TINY
from tests.engine.syncs import HostSyncs
from tests.pool.conftest import make_job
from training.networks import Discriminator, Encoder, EncoderConfig, Generator

STEPS = 40


@pytest.fixture(scope="module")
def tiny_encoder() -> Encoder:
    torch.manual_seed(3)
    return Encoder(TINY, EncoderConfig(width=8, groups=4)).eval().requires_grad_(False)


def _guessed(index: int, **params: float) -> SearchJob:
    """`make_job`'s job, started from the encoder's guess."""
    job = make_job(index, **params)
    return replace(job, params=replace(job.params, init="encoder"))


def _runner(gan: tuple[Generator, Discriminator], encoder: Encoder, **options: object) -> SearchRunner:
    return SearchRunner(*gan, torch.device("cpu"), "fp32", encoder, StepOptions(**options))  # type: ignore[arg-type]


def _step_to_the_end(batch: SearchBatch) -> tuple[HostSyncs, int, int]:
    """Steps until the table is empty; the waits of the steps, how many steps, and how many finished searches."""
    syncs, steps, finished = HostSyncs(), 0, 0
    while batch.live_slots:
        with syncs:
            finished += len(batch.step())
        steps += 1
    return syncs, steps, finished


@pytest.mark.parametrize("every", [1, 8])
def test_waits_are_one_per_plateau_read_plus_the_answers(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder, every: int
) -> None:
    batch = _runner(tiny_gan, tiny_encoder, plateau_every=every).batch()
    for index in range(4):
        batch.add(make_job(index, iterations=STEPS, restarts=2))
    syncs, steps, finished = _step_to_the_end(batch)
    assert (steps, finished) == (STEPS, 4)
    # one read every `every` steps, and one copy of the answers of the step in which they ended
    assert syncs.total <= STEPS // every + 1, syncs.waits
    assert syncs.queued == 1  # the admission


def test_a_table_of_mixed_starts_and_priors_copies_nothing_per_step(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder
) -> None:
    batch = _runner(tiny_gan, tiny_encoder, sizes=(1, 2, 4, 8)).batch()
    for index in range(2):
        batch.add(make_job(index, iterations=STEPS, restarts=2, prior_weight=0.003 * index))
    for index in range(2, 4):
        batch.add(_guessed(index, iterations=STEPS, restarts=1, prior_weight=0.0))
    syncs, steps, _ = _step_to_the_end(batch)
    assert steps == STEPS
    assert syncs.total <= STEPS // 8 + 1, syncs.waits
    assert syncs.queued == 2  # the admission, and the discriminator's rows once


def test_admissions_between_steps_are_one_queued_copy_per_step_and_add_copies_nothing(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder
) -> None:
    batch = _runner(tiny_gan, tiny_encoder).batch()
    adding = HostSyncs()
    with adding:
        for index in range(3):
            batch.add(_guessed(index, iterations=30, restarts=2))
    # what is left is host work on the jobs' own CPU tensors: the hole check's pixel count per job, and the hole
    # read as an array for its importance weights (an OpenCV box sum)
    assert adding.waits == {"__int__": 3, "numpy": 3} and adding.queued == 0, adding.waits
    stepping = HostSyncs()
    with stepping:
        batch.step()
    assert stepping.queued == 1 and stepping.total == 0, stepping.waits
    for index in range(3, 6):  # three more between two steps: still one copy
        batch.add(make_job(index, iterations=30, restarts=1))
    with stepping:
        batch.step()
    assert stepping.queued == 2, stepping.queued
