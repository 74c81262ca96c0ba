"""Mean and 95 % confidence interval of per-image figures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """Mean of n values and the two-sided 95 % Student-t interval of that mean (NaN bounds for n < 2)."""

    n: int
    mean: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: an undefined bound becomes null, not the non-standard NaN token."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in vars(self).items()}


def mean_interval(values: np.ndarray | list[float], confidence: float = 0.95) -> Interval:
    """Student-t interval: per-image scores are independent draws, and n is often small (tens)."""
    data = np.asarray(values, dtype=np.float64)
    assert data.ndim == 1 and len(data) > 0, data.shape
    mean = float(data.mean())
    if len(data) < 2:
        return Interval(1, mean, math.nan, math.nan)
    sem = float(data.std(ddof=1)) / math.sqrt(len(data))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(data) - 1)) * sem
    return Interval(len(data), mean, mean - half, mean + half)
