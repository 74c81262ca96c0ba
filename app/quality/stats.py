"""Centre and 95 % confidence interval of per-image figures: a mean, or a median where a few photos dominate a mean."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats


def _json_safe(fields: dict[str, Any]) -> dict[str, Any]:
    """An undefined bound becomes null, not the non-standard NaN token."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in fields.items()}


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

    def text(self, digits: int) -> str:
        """`mean ± half-width`: the interval is symmetric."""
        return f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(vars(self))


@dataclass(frozen=True)
class Median:
    """Median of n values and a distribution-free 95 % interval of it from two order statistics (NaN when n < 6)."""

    n: int
    median: float
    low: float
    high: float

    def text(self, digits: int) -> str:
        """`median [low, high]`: the interval is not symmetric about the median."""
        return f"{self.median:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(vars(self))


Cell = Interval | Median


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


def median_interval(values: np.ndarray | list[float], confidence: float = 0.95) -> Median:
    """The k-th smallest and k-th largest values, k from Binomial(n, 1/2), cover the median with >= `confidence`.

    No assumption on the figures' distribution (a ratio with a long tail has
    none a t interval could use) and no resampling seed: the same records give
    the same interval. Coverage is 1 - 2 P(B <= k - 1) for B ~ Binomial(n, 1/2).
    """
    data = np.sort(np.asarray(values, dtype=np.float64))
    assert data.ndim == 1 and len(data) > 0, data.shape
    median = float(np.median(data))
    k = int(stats.binom.ppf((1 - confidence) / 2, len(data), 0.5))  # 1-based rank of the lower bound
    if k < 1:  # too few values for any pair of order statistics to reach the confidence
        return Median(len(data), median, math.nan, math.nan)
    return Median(len(data), median, float(data[k - 1]), float(data[len(data) - k]))
