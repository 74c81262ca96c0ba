"""Score one or more models and the classical baselines on the same damaged photos, per mask family.

For each family and each image: draw a hole (seeded by seed, family, image),
destroy its pixels, then let every method fill the same damaged photo through
the service's path (prepare at the model's resolution, run, finish at the
photo's size) and score what it returns against the original. Every model kind
runs through its runner's steppable batch, so a search and a one-pass network
are scored on exactly the same cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from app.engine import MASK_KINDS, make_mask
from app.engine.depth import EDGE_FILL, EdgeFill
from app.engine.kinds import Job, Params, Runner, ServedKind
from app.engine.restore import Restoration
from app.quality.baselines import BASELINES
from app.quality.damage import destroy
from app.quality.metrics import hole_gms, hole_psnr, hole_sharpness, masked_l1, seam_gradient_error, ssim
from app.quality.stats import Cell, mean_interval, median_interval

# method name -> (compose.finish blend, with the edge fill); "ours" is what the service answers
SEARCH_METHODS = {"ours-no-blend": ("none", False), "ours-no-edge": ("poisson", False), "ours": ("poisson", True)}
METHODS = (*BASELINES, *SEARCH_METHODS)  # the methods of a one-model evaluation
LONE = "ours"  # the label of the model in a one-model evaluation
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
METRICS: dict[str, Metric] = {
    "psnr": hole_psnr,
    "ssim": lambda result, truth, hole: ssim(result, truth),
    "l1": masked_l1,
    "seam": seam_gradient_error,
    "sharp": hole_sharpness,
    "gms": hole_gms,
}
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "seam": False, "sharp": True, "gms": True}
# a ratio to the original's detail explodes on the few photos whose original is nearly flat: their mean
# would be theirs, so it is summarised by its median; every other figure is bounded and summarised by its mean
MEDIAN_METRICS = frozenset({"sharp"})


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
    iterations: dict[str, int] = field(default_factory=dict)  # per model label: of the search's best restart
    generated: dict[str, torch.Tensor] = field(default_factory=dict)  # per model label: its (C, R, R) answer


@dataclass(frozen=True)
class Contender:
    """One model in an evaluation: its runner, its job parameters, and the methods its answer is finished into.

    Alone, a model is `ours` and yields the three finishes of SEARCH_METHODS (the
    ablations of blend and edge fill); beside others each is named by its key and
    yields only what the service answers.
    """

    label: str
    served: ServedKind
    runner: Runner
    params: Params
    resolution: int
    finishes: Mapping[str, tuple[str, bool]]

    @property
    def kind(self) -> str:
        return self.served.name

    def restoration(self, case: Case) -> Restoration:
        """The case's damaged photo on its way through this model."""
        return Restoration.begin(case.damaged, case.hole, self.resolution)

    def job(self, restoration: Restoration) -> Job:
        return restoration.job(self.served, self.params)

    @classmethod
    def alone(cls, served: ServedKind, runner: Runner, params: Params, resolution: int) -> Contender:
        return cls(LONE, served, runner, params, resolution, SEARCH_METHODS)

    @classmethod
    def among(cls, key: str, served: ServedKind, runner: Runner, params: Params, resolution: int) -> Contender:
        return cls(key, served, runner, params, resolution, {key: SEARCH_METHODS["ours"]})


@dataclass
class Evaluation:
    """Every case, every per-image score, and the mean and interval per (family, method, metric)."""

    cases: dict[str, list[Case]]
    records: list[dict[str, float | int | str]]
    cells: dict[tuple[str, str, str], Cell]
    methods: list[str]  # baselines first, then each model's finishes, in table order
    seconds: dict[str, float]  # per model label: wall time of its runs over every case

    @property
    def search_seconds(self) -> float:
        return sum(self.seconds.values())


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


def run_model(
    cases: Sequence[Case],
    contender: Contender,
    photos: int,
    progress: Callable[[int], None] | None = None,
    edge: EdgeFill = EDGE_FILL,
) -> None:
    """Run every case, about `photos` at a time in one table (a finished job frees its room at once)."""
    restarts = contender.params.slots
    slots = photos * restarts
    batch = contender.runner.batch()
    pending = list(reversed(cases))
    owner: dict[int, tuple[Case, Restoration]] = {}
    while pending or batch.live_slots:
        while pending and (batch.live_slots == 0 or batch.live_slots + restarts <= slots):
            case = pending.pop()
            restoration = contender.restoration(case)
            owner[batch.add(contender.job(restoration))] = (case, restoration)
        for key in batch.step():
            (case, restoration), result = owner.pop(key), batch.pop(key)
            case.iterations[contender.label] = result.iterations
            case.generated[contender.label] = result.generated
            for method, (blend, with_edge) in contender.finishes.items():
                edge_fill = edge if with_edge else None
                case.outputs[method] = restoration.finish(result.generated, restoration.plan(blend, edge_fill))
            if progress is not None:
                progress(1)


def score(cases: Sequence[Case], methods: Sequence[str]) -> list[dict[str, float | int | str]]:
    """One record per (case, method) with every metric."""
    records: list[dict[str, float | int | str]] = []
    for case in cases:
        for method in methods:
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


def summarise(records: Sequence[dict[str, float | int | str]]) -> dict[tuple[str, str, str], Cell]:
    """(family, method, metric) -> mean (or median) and 95 % interval over images, in the order the records came.

    Only the metrics the records hold: a folder written before a metric existed is summarised as it was.
    """
    groups: dict[tuple[str, str], list[dict[str, float | int | str]]] = {}
    for record in records:
        groups.setdefault((str(record["kind"]), str(record["method"])), []).append(record)
    metrics = [metric for metric in METRICS if metric in records[0]]
    return {
        (kind, method, metric): (median_interval if metric in MEDIAN_METRICS else mean_interval)(
            [float(r[metric]) for r in group]
        )
        for (kind, method), group in groups.items()
        for metric in metrics
    }


def evaluate(
    images: np.ndarray,
    names: Sequence[str],
    contenders: Sequence[Contender],
    kinds: Sequence[str],
    seed: int,
    photos: int,
    progress: Callable[[int], None] | None = None,
    edge: EdgeFill = EDGE_FILL,
) -> Evaluation:
    """Every method on every (family, image); each model batched across all families at once."""
    cases = {kind: make_cases(images, names, kind, seed) for kind in kinds}
    every = [case for kind in kinds for case in cases[kind]]
    run_baselines(every)
    seconds = {}
    for contender in contenders:
        start = time.perf_counter()
        run_model(every, contender, photos, progress, edge)
        seconds[contender.label] = time.perf_counter() - start
    methods = [*BASELINES, *(method for contender in contenders for method in contender.finishes)]
    records = score(every, methods)
    return Evaluation(cases=cases, records=records, cells=summarise(records), methods=methods, seconds=seconds)
