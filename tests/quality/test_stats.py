"""The 95 % interval on a case computed by hand."""

from __future__ import annotations

import math

import pytest

from app.quality.stats import mean_interval


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
