"""The 95 % interval on a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from app.quality.stats import mean_interval, median_interval


def test_student_t_interval_of_three_values() -> None:
    interval = mean_interval([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2 dof) * sd / sqrt(n)
    assert (interval.n, interval.mean) == (3, 2.0)
    assert interval.low == pytest.approx(2.0 - half) and interval.high == pytest.approx(2.0 + half)
    assert interval.half_width == pytest.approx(half)


def test_one_value_has_no_interval_and_json_says_null() -> None:
    interval = mean_interval([5.0])
    assert interval.mean == 5.0 and math.isnan(interval.low)
    assert interval.to_dict() == {"n": 1, "mean": 5.0, "low": None, "high": None}


def test_median_interval_is_the_order_statistics_of_the_binomial() -> None:
    """n = 100: the 40th and 61st smallest values (coverage 1 - 2 P(B <= 39) = 0.965 for B ~ Bin(100, 1/2))."""
    values = [float(v) for v in np.random.default_rng(0).permutation(100) + 1]
    interval = median_interval(values)
    assert (interval.n, interval.median, interval.low, interval.high) == (100, 50.5, 40.0, 61.0)
    assert 1 - 2 * stats.binom.cdf(39, 100, 0.5) >= 0.95 > 1 - 2 * stats.binom.cdf(40, 100, 0.5)


def test_a_few_large_ratios_move_the_mean_not_the_median() -> None:
    values = [0.3] * 95 + [20.0] * 5  # a flat original makes a ratio explode on a few photos
    assert mean_interval(values).mean > 1.2
    interval = median_interval(values)
    assert interval.median == interval.low == interval.high == 0.3
    assert interval.text(2) == "0.30 [0.30, 0.30]"


def test_five_values_are_too_few_for_a_median_interval() -> None:
    interval = median_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert interval.median == 3.0 and math.isnan(interval.low)
    assert interval.to_dict() == {"n": 5, "median": 3.0, "low": None, "high": None}
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).low == 1.0  # n = 6: the extremes cover 97 %
