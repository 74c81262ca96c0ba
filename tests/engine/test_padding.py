"""Padded tables and late plateau reads change no answer: the rows they add are inert, a plateaued row frozen."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from app.engine import SearchResult, SearchRunner
from app.engine.search import SearchJob, SearchParams
from app.engine.stepping import StepOptions, powers_of_two
from tests.conftest import TINY
from tests.pool.conftest import make_job
from training.networks import Discriminator, Encoder, EncoderConfig, Generator


@pytest.fixture(scope="module")
def tiny_encoder() -> Encoder:
    torch.manual_seed(3)
    return Encoder(TINY, EncoderConfig(width=8, groups=4)).eval().requires_grad_(False)


def _jobs() -> list[SearchJob]:
    """Random starts with and without the prior, an encoder start, a one-pass job; some plateau early."""
    jobs = [
        make_job(index, iterations=25, restarts=1 + index % 3, prior_weight=0.003 * (index % 2)) for index in range(4)
    ]
    jobs += [make_job(index, iterations=30, restarts=2, patience=3, tolerance=0.05) for index in range(4, 6)]
    guessed = [
        SearchParams(iterations=12, restarts=2, seed=6, init="encoder"),
        SearchParams(iterations=0, init="encoder"),
    ]
    return jobs + [replace(make_job(6 + index), params=params) for index, params in enumerate(guessed)]


def _answers(gan: tuple[Generator, Discriminator], encoder: Encoder, options: StepOptions) -> list[SearchResult]:
    return SearchRunner(*gan, torch.device("cpu"), "fp32", encoder, options).run(_jobs())


def _same(ours: list[SearchResult], theirs: list[SearchResult]) -> None:
    for one, other in zip(ours, theirs, strict=True):
        assert (one.loss, one.iterations) == (other.loss, other.iterations)
        assert torch.equal(one.generated, other.generated)


def test_sizes_pad_up_to_the_next_and_no_further() -> None:
    options = StepOptions(sizes=(1, 2, 4, 8))
    assert [options.padded(rows) for rows in (1, 3, 5, 8, 9)] == [1, 4, 8, 8, 9]
    assert powers_of_two(64) == (1, 2, 4, 8, 16, 32, 64) and powers_of_two(24) == (1, 2, 4, 8, 16, 24)
    for bad in ((4, 2), (0, 1), (2, 2)):
        with pytest.raises(ValueError, match="ascending positive"):
            StepOptions(sizes=bad)
    with pytest.raises(ValueError, match="plateau_every"):
        StepOptions(plateau_every=0)


def test_padding_rows_change_no_real_row_by_a_bit(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder
) -> None:
    exact = _answers(tiny_gan, tiny_encoder, StepOptions(plateau_every=1))
    _same(_answers(tiny_gan, tiny_encoder, StepOptions(sizes=(3, 16, 64), plateau_every=1)), exact)


def test_plateaus_read_late_give_the_same_answers(
    tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder
) -> None:
    exact = _answers(tiny_gan, tiny_encoder, StepOptions(plateau_every=1))
    assert any(0 < answer.iterations < 30 for answer in exact[4:6]), "the plateau cases must stop early"
    _same(_answers(tiny_gan, tiny_encoder, StepOptions(plateau_every=16)), exact)


def test_a_plateaued_search_is_answered_at_the_next_read(tiny_gan: tuple[Generator, Discriminator]) -> None:
    batch = SearchRunner(*tiny_gan, torch.device("cpu"), options=StepOptions(plateau_every=5)).batch()
    key = batch.add(make_job(0, iterations=200, restarts=1, patience=2, tolerance=0.5))
    steps, finished = 0, list[int]()
    while not finished:
        finished, steps = batch.step(), steps + 1
    assert finished == [key] and steps % 5 == 0
    assert batch.pop(key).iterations < steps  # it stopped counting when it plateaued, before the read
    assert batch.live_slots == 0
