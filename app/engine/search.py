"""What a search is asked to do and what it answers: parameters, job, result."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Literal

import cv2
import numpy as np
import torch

from app.engine.errors import EngineError, MaskError, ParamsError

Init = Literal["encoder", "random"]
INITS: tuple[Init, ...] = ("encoder", "random")


@dataclass(frozen=True)
class SearchParams:
    """One search's knobs. Defaults are the random start's, after Yeh et al. and DESIGN.md's measurements;
    `params_for` gives each start its own measured defaults.

    `patience` and `tolerance` define the plateau: a restart stops once its loss
    has not fallen by a `tolerance` share for `patience` iterations. `init`: where
    restart 0 starts, a seeded random z or the model's encoder's guess E(x); later
    restarts start at that guess plus `init_noise` times seeded Gaussian noise.
    `iterations=0` with the encoder is the one-pass answer G(E(x)); `iterations=None` with the
    encoder lets the hole decide (`HoleBudget`).
    """

    iterations: int | None = 400
    restarts: int = 2
    prior_weight: float = 0.003  # lambda, Yeh et al. section 4
    lr: float = 0.03
    seed: int = 0
    window: int = 7  # importance-weight neighbourhood, Yeh et al.
    z_bound: float = 3.0  # |z_i| <= 3 std keeps z where the Gaussian prior has mass
    patience: int = 50
    tolerance: float = 1e-3
    init: Init = "random"
    init_noise: float = 0.5

    @property
    def slots(self) -> int:
        """Table rows a job holds: one per restart."""
        return self.restarts

    @property
    def start(self) -> str:
        return self.init

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ParamsError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.iterations == 0 and self.init != "encoder":
            raise ParamsError("iterations=0 (one pass, G(E(x))) needs init=encoder: a random start has no answer yet")
        if self.iterations is None and self.init != "encoder":
            raise ParamsError("a budget chosen by the hole needs init=encoder: give a random start its iterations")
        limits: dict[str, tuple[float, float]] = {
            "iterations": (0, 100_000),
            "restarts": (1, 64),
            "prior_weight": (0.0, 1e3),
            "lr": (1e-6, 10.0),
            "seed": (0, 2**63 - 1),
            "window": (1, 63),
            "z_bound": (0.1, 100.0),
            "patience": (1, 100_000),
            "tolerance": (0.0, 1.0),
            "init_noise": (0.0, 10.0),
        }
        for field in fields(self):
            if field.name == "init" or (field.name == "iterations" and self.iterations is None):
                continue
            value = getattr(self, field.name)
            low, high = limits[field.name]
            whole = field.name == "iterations" or isinstance(field.default, int)
            if isinstance(value, bool) or (whole and not isinstance(value, int)):
                raise ParamsError(f"{field.name} must be a whole number, got {value!r}")
            if not (isinstance(value, int | float) and math.isfinite(value) and low <= value <= high):
                raise ParamsError(f"{field.name} must lie in [{low:g}, {high:g}], got {value!r}")
        if self.window % 2 == 0:
            raise ParamsError(f"window must be odd so it is centred on its pixel, got {self.window}")


@dataclass(frozen=True)
class HoleBudget:
    """Iterations from how deep the hole reaches: none where it is very deep, few where it is deep, more where
    every hole pixel is near context.

    The curves (docs/evaluation/curves) show why: from the encoder's guess, a deep hole (half a photo,
    a lost block) gets *worse* as the search fits the known pixels ever more closely and pulls the
    hole's content after them, while a thin or scattered hole keeps improving up to ~100 iterations
    as the context pins it down. Depth is the largest distance from a hole pixel to the nearest known
    one, as a share of the model's side; `tiers` are (least depth, iterations), deepest first.
    """

    tiers: tuple[tuple[float, int], ...] = ((0.375, 0), (0.1875, 25))  # 24 and 12 pixels of 64
    shallow: int = 100

    def __call__(self, hole: torch.Tensor) -> int:
        depth = hole_depth(hole.cpu().numpy()) / hole.shape[-1]
        return next((iterations for least, iterations in self.tiers if depth >= least), self.shallow)


HOLE_BUDGET = HoleBudget()


def hole_depth(hole: np.ndarray) -> float:
    """The largest distance, in pixels, from a hole pixel to the nearest known one (a mask with both).

    OpenCV's exact Euclidean transform, in a third of SciPy's time (it runs as every search is admitted). Its
    float32 maximum is squared back to the whole number it is the root of, so the float64 root has SciPy's bits
    and a depth on a tier's edge picks the same budget.
    """
    nearest = cv2.distanceTransform(np.ascontiguousarray(hole).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return math.sqrt(round(float(nearest.max()) ** 2))


# Per start, the budget and prior chosen from `python -m app evaluate --curves` (docs/evaluation/curves):
# from the encoder's guess a search without the discriminator's prior, its length set by the hole,
# matches or beats the random start's 400 x 2 with the prior; the random start keeps the previous
# release's defaults, so its answers do not move.
DEFAULTS: dict[str, dict[str, int | float | None]] = {
    "encoder": {"iterations": None, "restarts": 1, "prior_weight": 0.0},
    "random": {"iterations": 400, "restarts": 2, "prior_weight": 0.003},
}


def params_for(has_encoder: bool, init: Init | None = None, **overrides: int | float | None) -> SearchParams:
    """A search's parameters: the measured `DEFAULTS` of its start, then every override that is not None.

    The start is the caller's `init`, else the encoder's guess where the model has an encoder.
    """
    chosen: Init = init or ("encoder" if has_encoder else "random")
    if chosen == "encoder" and not has_encoder:
        raise ParamsError("init=encoder needs a model version with an encoder: use init=random, or pick one that has")
    given = {name: value for name, value in overrides.items() if value is not None}
    return replace(SearchParams(init=chosen, **DEFAULTS[chosen]), **given)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SearchJob:
    """One image to complete at model resolution: y in [-1, 1] and its hole (True = missing)."""

    target: torch.Tensor  # (C, R, R) float in [-1, 1]
    hole: torch.Tensor  # (R, R) bool, True = missing
    params: SearchParams = SearchParams()

    @property
    def budget(self) -> int:
        """Iterations per restart: the caller's, or the hole's (`HOLE_BUDGET`)."""
        return self.params.iterations if self.params.iterations is not None else HOLE_BUDGET(self.hole)

    def check(self, channels: int, resolution: int) -> None:
        """Raise a named error unless this job fits a model of this shape."""
        check_job(self.target, self.hole, channels, resolution)


def check_job(target: torch.Tensor, hole: torch.Tensor, channels: int, resolution: int) -> None:
    """A job's image and hole fit a model of this shape, and the hole leaves something to fill and some context."""
    expected = (channels, resolution, resolution)
    if tuple(target.shape) != expected or not target.is_floating_point():
        raise EngineError(
            f"target must be a float tensor of shape {expected}, got {target.dtype} "
            f"{tuple(target.shape)}: bring the image to the model resolution first"
        )
    if tuple(hole.shape) != expected[1:] or hole.dtype != torch.bool:
        raise MaskError(
            f"hole must be a bool mask of shape {expected[1:]}, got {hole.dtype} "
            f"{tuple(hole.shape)}: give one mask pixel per image pixel"
        )
    check_hole_coverage(int(hole.sum()), hole.numel())


def check_hole_coverage(missing: int, total: int) -> None:
    """An empty hole has nothing to fill; an all-hole mask has no context to search against."""
    if missing == 0:
        raise MaskError("the mask marks no pixel to fill: paint the damaged area white (or transparent)")
    if missing == total:
        raise MaskError("the mask marks every pixel to fill: leave some of the photo known so the search has context")


@dataclass
class SearchResult:
    """G(z*) of the best restart and the figures of that restart."""

    generated: torch.Tensor  # (C, R, R) float [-1, 1] on CPU
    loss: float  # total loss of the returned image (the lowest its restart reached)
    iterations: int  # iterations the best restart ran (an early stop counts)
    seconds: float  # wall time from admission to the last restart's end
    # the most slots (of every search of its model on its worker) in one step it took part in, set by the pool:
    # above its own restarts, it shared a step with another search
    batch_slots: int = 0


def initial_z(seed: int, restart: int, z_dim: int) -> torch.Tensor:
    """z ~ N(0, I) from (seed, restart) alone, drawn on the CPU so every device starts alike.

    SeedSequence mixes the pair, so seed 0's second restart is not seed 1's first.
    """
    state = int(np.random.SeedSequence((seed, restart)).generate_state(1, np.uint64)[0])
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(state))
