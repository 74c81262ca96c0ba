"""Paired gaps on hand-worked records: the strongest baseline per family, verdicts from the interval."""

from __future__ import annotations

import math

import pytest

from app.quality.gaps import Record, family_gaps, format_gaps, verdict
from app.quality.stats import Interval


def records(kind: str, psnr: dict[str, list[float]], ssim: dict[str, list[float]]) -> list[Record]:
    return [
        {"kind": kind, "index": i, "name": f"p{i}", "method": method, "psnr": value, "ssim": ssim[method][i]}
        for method, values in psnr.items()
        for i, value in enumerate(values)
    ]


def test_paired_gaps_against_the_strongest_baseline() -> None:
    # ns is the strongest baseline here (mean 21 dB); ours leads it by exactly 2 dB on every photo
    psnr = {
        "mean": [10.0, 11.0, 12.0],
        "telea": [19.0, 20.0, 22.0],
        "ns": [20.0, 21.0, 22.0],
        "ours-no-blend": [21.0, 23.0, 23.0],
        "ours-no-edge": [22.0, 23.0, 24.0],
        "ours": [22.0, 23.0, 24.0],
    }
    ssim = {method: [0.5, 0.6, 0.7] for method in psnr} | {"ours": [0.6, 0.5, 0.7]}
    (gaps,) = family_gaps(records("center", psnr, ssim))
    assert gaps.kind == "center" and gaps.best_classical == "ns"
    assert (gaps.psnr_vs_best.mean, gaps.psnr_vs_best.low, gaps.psnr_vs_best.high) == pytest.approx((2, 2, 2))
    assert verdict(gaps.psnr_vs_best) == "win"
    # SSIM differences +0.1, -0.1, 0: mean 0, the interval spans zero
    assert gaps.ssim_vs_telea.mean == pytest.approx(0, abs=1e-12) and verdict(gaps.ssim_vs_telea) == "tie"
    # blending adds 1, 0, 1 dB: mean 2/3, sd 0.577, t(2) 4.303 -> half-width 1.434
    assert gaps.blend_gain.mean == pytest.approx(2 / 3)
    assert gaps.blend_gain.half_width == pytest.approx(4.3027 * 0.57735 / math.sqrt(3), rel=1e-4)
    assert gaps.edge_gain.mean == 0 and verdict(gaps.edge_gain) == "tie"  # ours equals ours-no-edge here

    table = format_gaps([gaps])
    assert "| center | ns | +2.00 [+2.00, +2.00] win | 100% | +0.000 [" in table


def test_verdicts_and_family_order() -> None:
    assert verdict(Interval(3, -1.0, -1.5, -0.5)) == "loss"
    assert verdict(Interval(3, 0.5, -0.1, 1.1)) == "tie"
    assert verdict(Interval(1, 0.5, math.nan, math.nan)) == "tie"
    flat = {m: [1.0, 2.0] for m in ("mean", "telea", "ns", "ours-no-blend", "ours-no-edge", "ours")}
    both = records("half", flat, flat) + records("center", flat, flat)
    assert [g.kind for g in family_gaps(both)] == ["half", "center"]
    assert family_gaps(both)[0].psnr_ahead_share == 0  # a tie on a photo is not a lead
