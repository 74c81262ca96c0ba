"""Searches that start from an encoder's guess: one pass, restarts, batch invariance, the cheaper step, peeking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from app.engine import ParamsError, SearchJob, SearchParams, SearchRunner, make_mask
from app.engine.search import DEFAULTS, HOLE_BUDGET, hole_depth, params_for
from tests.conftest import TINY
from training.networks import Discriminator, Encoder, EncoderConfig, Generator

R = TINY.resolution


@pytest.fixture(scope="module")
def tiny_encoder() -> Encoder:
    torch.manual_seed(3)
    return Encoder(TINY, EncoderConfig(width=8, groups=4)).eval().requires_grad_(False)


@pytest.fixture
def encoded(tiny_gan: tuple[Generator, Discriminator], tiny_encoder: Encoder) -> SearchRunner:
    return SearchRunner(*tiny_gan, torch.device("cpu"), encoder=tiny_encoder)


def job(index: int, **params: object) -> SearchJob:
    target = torch.rand(3, R, R, generator=torch.Generator().manual_seed(2000 + index)) * 2 - 1
    hole = torch.from_numpy(make_mask(("center", "strokes", "half")[index % 3], R, np.random.default_rng(index)))
    settings: dict = {"iterations": 40, "restarts": 1, "seed": index, "init": "encoder", **params}
    return SearchJob(target=target.masked_fill(hole, 0.0), hole=hole, params=SearchParams(**settings))


def test_one_pass_answers_g_of_e(encoded: SearchRunner, tiny_encoder: Encoder) -> None:
    one = job(0, iterations=0)
    result = encoded.run([one])[0]
    with torch.no_grad():
        z = tiny_encoder(one.target[None], one.hole[None, None].float()).clamp(-3, 3)
        expected = encoded.generator(z)[0]
    assert result.iterations == 0
    torch.testing.assert_close(result.generated, expected, rtol=1e-5, atol=1e-5)


def test_restart_zero_starts_at_the_guess_and_later_ones_near_it(encoded: SearchRunner) -> None:
    """Restart 0 of a one-pass search is G(E(x)); a second restart is a different image, and the lower loss wins."""
    single = encoded.run([job(1, iterations=0)])[0]
    double = encoded.run([job(1, iterations=0, restarts=2)])[0]
    assert double.loss <= single.loss
    batch = encoded.batch()
    key = batch.add(job(1, iterations=0, restarts=2, init_noise=0.0))  # no noise: both restarts are the guess
    batch.step()
    torch.testing.assert_close(batch.pop(key).generated, single.generated, rtol=0, atol=0)


def test_encoder_start_is_batch_invariant(encoded: SearchRunner) -> None:
    alone = encoded.run([job(0)])[0]
    others = [job(i, iterations=10 * i, restarts=1 + i % 2, prior_weight=0.003 * (i % 2)) for i in range(1, 6)]
    mixed = encoded.run(others[:2] + [job(0)] + others[2:])[2]
    assert mixed.iterations == alone.iterations
    torch.testing.assert_close(mixed.generated, alone.generated, atol=1e-4, rtol=1e-4)


def test_discriminator_runs_only_for_rows_with_a_prior(encoded: SearchRunner) -> None:
    rows: list[int] = []
    hook = encoded.discriminator.register_forward_hook(lambda module, args, out: rows.append(args[0].shape[0]))
    try:
        encoded.run([job(0, prior_weight=0.0), job(1, prior_weight=0.0)])
        assert rows == []
        encoded.run([job(0, prior_weight=0.0), job(1, prior_weight=0.01, restarts=2)])
        assert rows and set(rows) == {2}  # the prior's two restarts, never the row without one
    finally:
        hook.remove()


def test_a_runner_without_encoder_refuses_encoder_starts(runner: SearchRunner) -> None:
    with pytest.raises(ParamsError, match="init=encoder needs a model"):
        runner.run([job(0)])
    with pytest.raises(ParamsError, match="needs init=encoder"):
        SearchParams(iterations=0)
    with pytest.raises(ParamsError, match="init=encoder needs a model"):
        params_for(False, "encoder")


def test_defaults_follow_the_start() -> None:
    assert params_for(True).init == "encoder" and params_for(False).init == "random"
    for init in ("encoder", "random"):
        params = params_for(init == "encoder")
        assert {name: getattr(params, name) for name in DEFAULTS[init]} == DEFAULTS[init]
    assert params_for(True, "random", iterations=7).iterations == 7
    # the random start's defaults are the previous release's: its answers do not move
    assert params_for(False) == SearchParams()


def test_peek_is_the_answer_of_a_shorter_budget(encoded: SearchRunner) -> None:
    """A restart's path does not depend on its budget, so its best after k steps is the k-iteration answer."""
    short = encoded.run([job(2, iterations=15, restarts=2)])[0]
    batch = encoded.batch()
    key = batch.add(job(2, iterations=40, restarts=2))
    for _ in range(15):
        batch.step()
    peeked = batch.peek(key)
    assert peeked.iterations == short.iterations
    torch.testing.assert_close(peeked.generated, short.generated, rtol=0, atol=0)
    assert peeked.loss == short.loss


def test_hole_depth_is_scipys_to_the_bit() -> None:
    """The depth that picks a budget: SciPy's exact distance transform's maximum, bit for bit, over the masks
    the evaluation sends and random ones (holes on the border, one known pixel, a speckle)."""
    rng = np.random.default_rng(7)
    masks = [make_mask(kind, side, rng) for kind in ("center", "half", "strokes", "random80") for side in (16, 64, 128)]
    for side in (7, 64, 128):
        masks.append(rng.random((side, side)) < rng.random())
        lone = np.ones((side, side), dtype=bool)
        lone[rng.integers(side), rng.integers(side)] = False
        masks.append(lone)
    for mask in masks:
        if mask.any() and not mask.all():
            assert hole_depth(mask) == float(ndimage.distance_transform_edt(mask).max())


def test_the_hole_sets_the_default_budget(encoded: SearchRunner) -> None:
    """Half the photo gets the one-pass answer, a lost block a short search, thin and scattered holes a longer one."""
    assert params_for(True).iterations is None
    rng = np.random.default_rng(0)
    budgets = {kind: HOLE_BUDGET(torch.from_numpy(make_mask(kind, 64, rng))) for kind in ("center", "half", "random80")}
    assert budgets == {"center": 25, "half": 0, "random80": HOLE_BUDGET.shallow}
    assert HOLE_BUDGET(torch.from_numpy(make_mask("center", R, rng))) == 25  # depth is a share of the side
    deep = job(0, iterations=None)  # a centre hole
    scattered = torch.from_numpy(make_mask("random80", R, rng))
    thin = SearchJob(deep.target.masked_fill(scattered, 0.0), scattered, deep.params)
    assert (deep.budget, thin.budget) == (25, HOLE_BUDGET.shallow)
    results = encoded.run([deep, thin])
    assert results[0].iterations <= 25 < results[1].iterations <= HOLE_BUDGET.shallow
    with pytest.raises(ParamsError, match="needs init=encoder"):
        SearchParams(iterations=None, init="random")
