"""The one-pass table: every job admitted before a step is answered by it, alone or batched alike."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from app.engine.errors import EngineError, MaskError
from app.engine.kinds import completing as completing_kinds
from app.engine.kinds import served_kind
from app.engine.onepass import OnePassBatch, OnePassJob, OnePassRunner
from app.engine.search import SearchJob, SearchParams
from app.engine.stepping import StepOptions
from training.checkpoint import LoadedModel
from training.glcic import CompletionNetwork, GlcicConfig
from training.kinds import KINDS

CONFIG = GlcicConfig(resolution=32, width=8, d_width=8, features=16)


@pytest.fixture(scope="module")
def runner() -> OnePassRunner:
    torch.manual_seed(0)
    return OnePassRunner(CompletionNetwork(CONFIG), torch.device("cpu"))


def _job(seed: int) -> OnePassJob:
    generator = torch.Generator().manual_seed(seed)
    hole = torch.zeros(32, 32, dtype=torch.bool)
    hole[4 + seed : 20 + seed, 8:24] = True
    return OnePassJob(torch.rand(3, 32, 32, generator=generator) * 2 - 1, hole)


def test_every_kind_that_completes_has_an_entry_and_only_the_search_takes_a_budget() -> None:
    completing = {name for name, kind in KINDS.items() if kind.completes}
    assert completing_kinds() == completing and set(KINDS) - completing == {"framing"}
    assert {kind: sorted(served_kind(kind).parameters & {"iterations", "restarts", "init"}) for kind in completing} == {
        "search": ["init", "iterations", "restarts"],
        "glcic": [],
    }


def test_one_step_answers_every_job_with_its_known_pixels_and_batching_changes_nothing(
    runner: OnePassRunner,
) -> None:
    jobs = [_job(seed) for seed in range(3)]
    together = runner.run(jobs)
    for job, result in zip(jobs, together, strict=True):
        (alone,) = runner.run([job])
        torch.testing.assert_close(result.generated, alone.generated, rtol=1e-5, atol=1e-5)
        assert result.iterations == 0 and result.loss == 0.0
        assert torch.equal(result.generated[:, ~job.hole], job.target[:, ~job.hole])
        assert not torch.equal(result.generated[:, job.hole], job.target[:, job.hole])


def test_the_table_empties_in_one_step_and_a_cancelled_job_is_not_computed(runner: OnePassRunner) -> None:
    batch: OnePassBatch = runner.batch()
    first, second = batch.add(_job(0)), batch.add(_job(1))
    batch.cancel(second)
    assert batch.live_slots == 1
    assert batch.step() == [first] and batch.live_slots == 0 and batch.step() == []
    assert batch.pop(first).generated.shape == (3, 32, 32)
    with pytest.raises(EngineError, match="not finished"):
        batch.pop(first)


def test_jobs_it_cannot_run_fail_alone(runner: OnePassRunner) -> None:
    batch = runner.batch()
    search = SearchJob(_job(0).target, _job(0).hole, SearchParams(iterations=5, restarts=1))
    with pytest.raises(EngineError, match="one-pass model runs one-pass jobs"):
        batch.add(search)
    with pytest.raises(MaskError, match="marks no pixel"):
        batch.add(OnePassJob(torch.zeros(3, 32, 32), torch.zeros(32, 32, dtype=torch.bool)))
    with pytest.raises(EngineError, match="shape"):
        batch.add(OnePassJob(torch.zeros(3, 16, 16), torch.ones(16, 16, dtype=torch.bool)))
    assert batch.live_slots == 0


@contextmanager
def forwards(network: torch.nn.Module) -> Iterator[list[int]]:
    """The batch size of every forward of `network` while inside."""
    sizes: list[int] = []
    handle = network.register_forward_pre_hook(lambda _, inputs: sizes.append(inputs[0].shape[0]))
    try:
        yield sizes
    finally:
        handle.remove()


def test_a_step_is_padded_to_the_next_fixed_size_and_the_padding_changes_no_answer(runner: OnePassRunner) -> None:
    """Three jobs run as a batch of 8 with sizes (2, 8): blank rows fill it, and the three answers are the ones
    the exact batch gives (a compiled or graph-captured forward then meets only the fixed sizes)."""
    jobs = [_job(seed) for seed in range(3)]
    exact = runner.run(jobs)
    padded = OnePassRunner(runner.network, torch.device("cpu"), options=StepOptions(sizes=(2, 8)))
    with forwards(runner.network) as sizes:
        answers = padded.run(jobs)
        padded.run(jobs[:1])
        padded.run([_job(seed % 3) for seed in range(9)])  # above every size: the exact count
    assert sizes == [8, 2, 9]
    for one, other in zip(answers, exact, strict=True):
        torch.testing.assert_close(one.generated, other.generated, rtol=1e-5, atol=1e-5)
        assert one.generated.shape == (3, 32, 32)


def test_the_kinds_runner_warms_every_size_before_it_serves_when_asked(runner: OnePassRunner) -> None:
    """Two forwards at each padded size when the options warm (at start-up, before /readyz, and for a reloaded
    version), none when they do not (the CPU's default)."""
    model = LoadedModel(KINDS["glcic"], "tiny-glcic", "1", CONFIG, {"completion": runner.network}, {}, Path("."))
    kind = served_kind("glcic")
    with forwards(runner.network) as sizes:
        built = kind.runner(model, torch.device("cpu"), "fp32", StepOptions(sizes=(1, 4), warm=True))
    assert sizes == [1, 1, 4, 4] and built.options.sizes == (1, 4)
    with forwards(runner.network) as sizes:
        kind.runner(model, torch.device("cpu"), "fp32", StepOptions(sizes=(1, 4)))
    assert sizes == []


def test_below_fp32_the_network_runs_channels_last_and_answers_as_the_contiguous_one() -> None:
    """bf16 forwards take the channels_last layout (1.6x on the 2-core CPU), fp32 keeps the contiguous one and
    its answers bit for bit; the layout changes no bf16 answer beyond the precision's own rounding."""
    torch.manual_seed(1)
    contiguous = CompletionNetwork(CONFIG).eval().requires_grad_(False)
    fast = OnePassRunner(copy.deepcopy(contiguous), torch.device("cpu"), "bf16")
    exact = OnePassRunner(copy.deepcopy(contiguous), torch.device("cpu"), "fp32")
    weights = [module.weight for module in fast.network.modules() if isinstance(module, torch.nn.Conv2d)]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
    assert all(
        module.weight.is_contiguous() for module in exact.network.modules() if isinstance(module, torch.nn.Conv2d)
    )
    jobs = [_job(seed) for seed in range(3)]
    targets = torch.stack([job.target for job in jobs])
    holes = torch.stack([job.hole for job in jobs])[:, None].float()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        reference = contiguous(targets.masked_fill(holes.bool(), 0.0), holes).float()
    for row, answer in enumerate(fast.run(jobs)):
        torch.testing.assert_close(answer.generated, reference[row], rtol=0.0, atol=2e-2)
