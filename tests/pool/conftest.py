"""Pool test helpers: jobs that differ in everything, pixels as a client sees them (fixtures: tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import torch

from app.engine import SearchJob, SearchParams, make_mask
from tests.conftest import TINY

R = TINY.resolution


def make_job(index: int, **params: float) -> SearchJob:
    """A distinct target, mask family and seed per index; no plateau stop unless asked."""
    target = torch.rand(3, R, R, generator=torch.Generator().manual_seed(1000 + index)) * 2 - 1
    kind = ("center", "strokes", "blocks", "half", "random80")[index % 5]
    hole = torch.from_numpy(make_mask(kind, R, np.random.default_rng(index)))
    settings: dict = {"iterations": 40, "restarts": 2, "seed": index, "patience": 100_000, **params}
    return SearchJob(target=target, hole=hole, params=SearchParams(**settings))


def pixels(image: torch.Tensor) -> np.ndarray:
    """[-1, 1] floats to the 8-bit levels a client receives."""
    return ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
