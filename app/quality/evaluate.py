"""Score the search and the classical baselines on the same damaged photos, per mask family.

For each family and each image: draw a hole (seeded by seed, family, image),
destroy its pixels, then let every method fill the same damaged photo at the
model's resolution and score what it returns against the original.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from app.engine import MASK_KINDS, SearchJob, SearchParams, SearchRunner, finish, make_mask, prepare
from app.engine.depth import EDGE_FILL, EdgeFill
from app.quality.baselines import BASELINES
from app.quality.damage import destroy
from app.quality.metrics import hole_psnr, hole_sharpness, masked_l1, seam_gradient_error, ssim
from app.quality.stats import Interval, mean_interval

# method name -> (compose.finish blend, with the edge fill); "ours" is what the service answers
SEARCH_METHODS = {"ours-no-blend": ("none", False), "ours-no-edge": ("poisson", False), "ours": ("poisson", True)}
METHODS = (*BASELINES, *SEARCH_METHODS)
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
METRICS: dict[str, Metric] = {
    "psnr": hole_psnr,
    "ssim": lambda result, truth, hole: ssim(result, truth),
    "l1": masked_l1,
    "seam": seam_gradient_error,
    "sharp": hole_sharpness,
}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "seam": False, "sharp": True}


@dataclass
class Case:
    """One damaged photo of one mask family and what each method made of it."""

    kind: str
    index: int  # position in the evaluated image set
    name: str
    truth: np.ndarray  # (S, S, 3) uint8 at the photo size evaluated (the model's R, or the photo's own)
    hole: np.ndarray  # (S, S) bool
    damaged: np.ndarray  # truth with noise in the hole: all any method sees
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    iterations: int = 0  # of the search's best restart
    generated: torch.Tensor | None = None  # the search's (C, R, R) answer, to finish again with other settings


@dataclass
class Evaluation:
    """Every case, every per-image score, and the mean and interval per (family, method, metric)."""

    cases: dict[str, list[Case]]
    records: list[dict[str, float | int | str]]
    cells: dict[tuple[str, str, str], Interval]
    search_seconds: float


def case_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """A family's masks do not change when other families are evaluated with it, or n grows."""
    return np.random.default_rng([seed, MASK_KINDS.index(kind), index])


def make_cases(images: np.ndarray, names: Sequence[str], kind: str, seed: int) -> list[Case]:
    """(N, S, S, 3) uint8 originals -> one damaged case each, its hole from `kind` drawn at size S."""
    cases = []
    for index, (image, name) in enumerate(zip(images, names, strict=True)):
        rng = case_rng(seed, kind, index)
        hole = make_mask(kind, image.shape[0], rng)
        cases.append(Case(kind, index, name, image, hole, destroy(image, hole, rng)))
    return cases


def run_baselines(cases: Sequence[Case]) -> None:
    for case in cases:
        for method, fill in BASELINES.items():
            case.outputs[method] = fill(case.damaged, case.hole)


def run_search(
    cases: Sequence[Case],
    runner: SearchRunner,
    params: SearchParams,
    slots: int,
    progress: Callable[[int], None] | None = None,
    edge: EdgeFill = EDGE_FILL,
) -> None:
    """Search every case, keeping about `slots` restarts in one table (a finished search frees room at once)."""
    resolution = runner.generator.config.resolution
    batch = runner.batch()
    pending = list(reversed(cases))
    owner: dict[int, Case] = {}
    while pending or batch.live_slots:
        while pending and (batch.live_slots == 0 or batch.live_slots + params.restarts <= slots):
            case = pending.pop()
            prepared = prepare(case.damaged, case.hole, resolution)
            owner[batch.add(SearchJob(prepared.target, prepared.hole, params))] = case
        for key in batch.step():
            case, result = owner.pop(key), batch.pop(key)
            case.iterations = result.iterations
            case.generated = result.generated
            for method, (blend, with_edge) in SEARCH_METHODS.items():
                edge_fill = edge if with_edge else None
                case.outputs[method] = finish(case.damaged, case.hole, result.generated, blend=blend, edge=edge_fill)
            if progress is not None:
                progress(1)


def score(cases: Sequence[Case]) -> list[dict[str, float | int | str]]:
    """One record per (case, method) with every metric."""
    records: list[dict[str, float | int | str]] = []
    for case in cases:
        for method in METHODS:
            record: dict[str, float | int | str] = {
                "kind": case.kind,
                "index": case.index,
                "name": case.name,
                "method": method,
            }
            for metric, measure in METRICS.items():
                record[metric] = measure(case.outputs[method], case.truth, case.hole)
            records.append(record)
    return records


def summarise(records: Sequence[dict[str, float | int | str]]) -> dict[tuple[str, str, str], Interval]:
    """(family, method, metric) -> mean and 95 % interval over images, in the order the records came."""
    groups: dict[tuple[str, str], list[dict[str, float | int | str]]] = {}
    for record in records:
        groups.setdefault((str(record["kind"]), str(record["method"])), []).append(record)
    return {
        (kind, method, metric): mean_interval([float(r[metric]) for r in group])
        for (kind, method), group in groups.items()
        for metric in METRICS
    }


def evaluate(
    images: np.ndarray,
    names: Sequence[str],
    runner: SearchRunner,
    kinds: Sequence[str],
    params: SearchParams,
    seed: int,
    slots: int,
    progress: Callable[[int], None] | None = None,
    edge: EdgeFill = EDGE_FILL,
) -> Evaluation:
    """Every method on every (family, image); the search batched across all families at once."""
    cases = {kind: make_cases(images, names, kind, seed) for kind in kinds}
    every = [case for kind in kinds for case in cases[kind]]
    run_baselines(every)
    start = time.perf_counter()
    run_search(every, runner, params, slots, progress, edge)
    seconds = time.perf_counter() - start
    records = score(every)
    return Evaluation(cases=cases, records=records, cells=summarise(records), search_seconds=seconds)
