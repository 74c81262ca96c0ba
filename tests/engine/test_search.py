"""The latent search: batch invariance, reproducibility, budgets, early stop, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from app.engine import MaskError, ParamsError, PrecisionError, SearchJob, SearchParams, SearchRunner, make_mask
from app.engine.adam import BETA1, BETA2, EPS, adam_step
from app.engine.losses import importance_weights
from tests.conftest import TINY
from training.networks import Discriminator, Generator

R = TINY.resolution


def make_job(index: int, **params: float) -> SearchJob:
    """A distinct target, mask family and seed per index."""
    target = torch.rand(3, R, R, generator=torch.Generator().manual_seed(1000 + index)) * 2 - 1
    kind = ("center", "strokes", "blocks", "half", "random80")[index % 5]
    hole = torch.from_numpy(make_mask(kind, R, np.random.default_rng(index)))
    settings: dict = {"iterations": 60, "restarts": 2, "seed": index, **params}
    return SearchJob(target=target, hole=hole, params=SearchParams(**settings))


def test_one_search_alone_equals_it_batched_with_seven_others(runner: SearchRunner) -> None:
    """Other jobs differ in image, mask, seed, restarts and budget (shorter and longer), so the
    table grows and shrinks around the search while it runs."""
    alone = runner.run([make_job(0)])[0]
    others = [make_job(i, iterations=20 + 15 * i, restarts=1 + i % 3) for i in range(1, 8)]
    batched = runner.run(others[:3] + [make_job(0)] + others[3:])[3]
    assert batched.iterations == alone.iterations
    # Eval-mode convolutions of a batch may use other kernels/blockings than of one row, which changes
    # float rounding (~1e-7 relative per op); over 60 Adam steps that drifts to ~1e-5 at most,
    # far below one 8-bit level (2/255 ~ 8e-3 in [-1, 1]).
    torch.testing.assert_close(batched.generated, alone.generated, atol=1e-4, rtol=1e-4)
    assert batched.loss == pytest.approx(alone.loss, rel=1e-4)


def test_search_admitted_between_steps_is_unaffected(runner: SearchRunner) -> None:
    """What an iteration-level pool does: admit mid-flight, cancel a neighbour, pop when done."""
    alone = runner.run([make_job(0)])[0]
    batch = runner.batch()
    early = batch.add(make_job(1, iterations=200))
    finished: list[int] = []  # what each step reports: the searches it finished
    for _ in range(7):
        finished += batch.step()
    key = batch.add(make_job(0))
    doomed = batch.add(make_job(2, iterations=500))
    finished += batch.step()
    batch.cancel(doomed)
    assert batch.live_slots == 4
    while key not in finished:
        finished += batch.step()
    late = batch.pop(key)
    assert early not in finished and batch.live_slots == 2
    torch.testing.assert_close(late.generated, alone.generated, atol=1e-4, rtol=1e-4)


def test_fixed_seed_reproduces_exactly_and_seeds_differ(runner: SearchRunner) -> None:
    first, second = runner.run([make_job(0)]), runner.run([make_job(0)])
    assert torch.equal(first[0].generated, second[0].generated)
    assert first[0].loss == second[0].loss
    other = runner.run([make_job(0, seed=1)])[0]
    assert (other.generated - first[0].generated).abs().max() > 1e-2


def test_search_finds_a_reachable_target_and_respects_budget(runner: SearchRunner) -> None:
    """A target G can draw exactly (G of some z): the search must get much closer to it than its start."""
    with torch.no_grad():
        target = runner.generator(torch.randn(1, TINY.z_dim, generator=torch.Generator().manual_seed(7)))[0]
    job = make_job(0)
    short, long = runner.run(
        [
            SearchJob(target, job.hole, SearchParams(iterations=1, restarts=1, prior_weight=0.0)),
            SearchJob(target, job.hole, SearchParams(iterations=150, restarts=1, prior_weight=0.0, patience=150)),
        ]
    )
    assert short.iterations == 1 and long.iterations == 150
    assert long.loss < 0.5 * short.loss
    error = (long.generated - target).abs()
    assert error[:, job.hole].mean() < 0.5 * (short.generated - target).abs()[:, job.hole].mean()  # the hole too
    assert short.generated.shape == (3, R, R) and short.generated.device.type == "cpu"


def test_plateau_stops_early(runner: SearchRunner) -> None:
    """lr so small the loss cannot move by the tolerance: the restart stops after `patience`."""
    (result,) = runner.run([make_job(0, iterations=500, lr=1e-6, patience=10, tolerance=1e-2)])
    assert result.iterations == 11  # the first iteration sets the reference, ten more stall


def test_best_restart_wins(runner: SearchRunner) -> None:
    both = runner.run([make_job(0, restarts=3)])[0]
    singles = []
    for restart in range(3):
        # restart r of seed s is seeded by (s, r); rebuild each one alone through a one-restart batch
        batch = runner.batch()
        key = batch.add(make_job(0, restarts=restart + 1))
        while batch.live_slots:
            batch.step()
        singles.append(batch.pop(key).loss)
    assert both.loss == pytest.approx(min(singles), rel=1e-5)


def test_networks_stay_frozen(tiny_gan: tuple[Generator, Discriminator]) -> None:
    before = [p.clone() for p in tiny_gan[0].parameters()]
    SearchRunner(*tiny_gan, torch.device("cpu")).run([make_job(0, iterations=5)])
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_gan[0].parameters(), strict=True))
    assert not tiny_gan[0].training and all(p.grad is None for p in tiny_gan[0].parameters())


def test_bf16_autocast_runs_close_to_fp32(tiny_gan: tuple[Generator, Discriminator]) -> None:
    fp32 = SearchRunner(*tiny_gan, torch.device("cpu")).run([make_job(0, iterations=5)])[0]
    bf16 = SearchRunner(*tiny_gan, torch.device("cpu"), precision="bf16").run([make_job(0, iterations=5)])[0]
    assert bf16.generated.dtype == torch.float32
    assert bf16.loss == pytest.approx(fp32.loss, rel=0.05)


def test_bad_precision_is_refused(tiny_gan: tuple[Generator, Discriminator]) -> None:
    with pytest.raises(PrecisionError, match="fp16 needs a CUDA"):
        SearchRunner(*tiny_gan, torch.device("cpu"), precision="fp16")
    with pytest.raises(PrecisionError, match="one of"):
        SearchRunner(*tiny_gan, torch.device("cpu"), precision="int8")


@pytest.mark.parametrize(
    ("hole", "message"),
    [
        (torch.zeros(R, R, dtype=torch.bool), "no pixel"),
        (torch.ones(R, R, dtype=torch.bool), "every pixel"),
        (torch.zeros(R + 1, R, dtype=torch.bool), "shape"),
    ],
)
def test_bad_holes_raise_mask_error(runner: SearchRunner, hole: torch.Tensor, message: str) -> None:
    with pytest.raises(MaskError, match=message):
        runner.run([SearchJob(torch.zeros(3, R, R), hole, SearchParams())])


@pytest.mark.parametrize(
    "bad",
    [
        {"iterations": 0},
        {"iterations": 2.5},
        {"restarts": 0},
        {"restarts": True},
        {"lr": -1.0},
        {"window": 4},
        {"prior_weight": float("nan")},
    ],
)
def test_bad_params_raise(bad: dict) -> None:
    with pytest.raises(ParamsError):
        SearchParams(**bad)


def test_row_adam_matches_torch_adam() -> None:
    """Per-row Adam on one row is torch's Adam (same betas/eps), step for step."""
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(1, 5, generator=generator)
    reference = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([reference], lr=0.03, betas=(BETA1, BETA2), eps=EPS)
    ours, m, v, steps = start.clone(), torch.zeros(1, 5), torch.zeros(1, 5), torch.zeros(1, dtype=torch.int64)
    for _ in range(20):
        grad = torch.randn(1, 5, generator=generator)
        reference.grad = grad.clone()
        optimiser.step()
        ours = adam_step(ours, grad, m, v, steps, torch.tensor([0.03]))
    torch.testing.assert_close(ours, reference.detach())


@pytest.mark.parametrize("window", [1, 3, 7, 11])
def test_importance_weights_match_average_pooling_bit_for_bit(window: int) -> None:
    """The box sum gives the bits of PyTorch's in-image average (the search's answers depend on them)."""
    generator = torch.Generator().manual_seed(window)
    for rows, cols in [(64, 64), (128, 128), (13, 40), (window, window + 2)]:
        for share in (0.02, 0.3, 0.9):
            hole = torch.rand(rows, cols, generator=generator) < share
            pooled = F.avg_pool2d(hole.float()[None, None], window, 1, window // 2, count_include_pad=False)[0, 0]
            expected = pooled * (~hole).float()
            assert torch.equal(importance_weights(hole, window), expected)
            transposed = hole.t()  # a strided view, as a caller may hand over
            assert torch.equal(importance_weights(transposed, window), expected.t())


def test_importance_weights_follow_yeh() -> None:
    hole = torch.zeros(16, 16, dtype=torch.bool)
    hole[6:10, 6:10] = True
    weights = importance_weights(hole, window=7)
    assert (weights[hole] == 0).all()  # missing pixels carry no context
    assert weights[0, 0] == 0  # further than 3 pixels from the hole
    assert weights[5, 5] == pytest.approx(9 / 49)  # its 7x7 window (rows/cols 2..8) holds 3x3 hole pixels
    assert weights[5, 6] > weights[3, 6] > 0  # nearer the hole counts more
