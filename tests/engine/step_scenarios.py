"""Fixed searches on a tiny seeded model, run as a script by an old tree and by this one (test_step_answers).

Only the engine's public interface of commit ccc07c4 is used, so the same file runs in both.
`python step_scenarios.py NETS OUT [STEP_OPTIONS_JSON]` writes the answers to OUT (.npz); the step's options
(`app.engine.stepping.StepOptions`, which the old tree lacks) are given to this tree only.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from app.engine import SearchJob, SearchParams, SearchResult, SearchRunner, make_mask
from training.networks import Discriminator, Encoder, EncoderConfig, Generator, NetworkConfig

CONFIG = NetworkConfig(resolution=32, z_dim=16, g_width=8, d_width=8)
R = CONFIG.resolution


def nets(path: str) -> tuple[Generator, Discriminator, Encoder]:
    state = torch.load(path)
    generator, discriminator = Generator(CONFIG), Discriminator(CONFIG)
    encoder = Encoder(CONFIG, EncoderConfig(width=8, groups=4))
    for network, name in ((generator, "g"), (discriminator, "d"), (encoder, "e")):
        network.load_state_dict(state[name])
    return generator, discriminator, encoder


def job(index: int, **params: object) -> SearchJob:
    target = torch.rand(3, R, R, generator=torch.Generator().manual_seed(500 + index)) * 2 - 1
    kind = ("center", "strokes", "half", "blocks")[index % 4]
    hole = torch.from_numpy(make_mask(kind, R, np.random.default_rng(index)))
    return SearchJob(target, hole, SearchParams(**params))  # type: ignore[arg-type]


def scenarios(runner: SearchRunner) -> list[SearchResult]:
    """Random starts (plateaus and budgets), encoder starts (one pass, mixed priors, the hole's budget),
    and admissions between steps with a cancel."""
    answers = runner.run(
        [
            job(0, iterations=30, restarts=2, seed=1, patience=4, tolerance=0.02),
            job(1, iterations=25, restarts=3, seed=2),
            job(2, iterations=12, restarts=1, seed=3, patience=3, tolerance=0.05),
        ]
    )
    answers += runner.run(
        [
            job(3, init="encoder", iterations=0, restarts=2),
            job(4, init="encoder", iterations=20, restarts=1, prior_weight=0.0),
            job(5, init="encoder", iterations=15, restarts=2, patience=5, tolerance=0.01),
            job(6, init="encoder", iterations=None, restarts=1, prior_weight=0.0),
        ]
    )
    batch = runner.batch()
    first = batch.add(job(7, iterations=20, restarts=2, seed=7))
    for _ in range(3):
        batch.step()
    second = batch.add(job(8, init="encoder", iterations=10, restarts=1, prior_weight=0.0))
    dropped = batch.add(job(9, iterations=30, restarts=1, seed=9))
    batch.step()
    batch.cancel(dropped)
    third = batch.add(job(10, init="encoder", iterations=0))
    done: dict[int, SearchResult] = {}
    while batch.live_slots:
        for key in batch.step():
            done[key] = batch.pop(key)
    return answers + [done[first], done[second], done[third]]


def main() -> None:
    torch.set_num_threads(1)
    path, out = sys.argv[1:3]
    extra = {}
    if len(sys.argv) > 3:
        from app.engine.stepping import StepOptions

        given = json.loads(sys.argv[3])
        every = given.get("plateau_every", StepOptions.plateau_every)
        extra["options"] = StepOptions(sizes=tuple(given.get("sizes", ())), plateau_every=every)
    generator, discriminator, encoder = nets(path)
    runner = SearchRunner(generator, discriminator, torch.device("cpu"), "fp32", encoder, **extra)
    answers = scenarios(runner)
    np.savez(
        out,
        generated=np.stack([answer.generated.numpy() for answer in answers]),
        loss=np.array([answer.loss for answer in answers]),
        iterations=np.array([answer.iterations for answer in answers]),
    )


if __name__ == "__main__":
    main()
