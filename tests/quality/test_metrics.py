"""Metrics against cases small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.quality.metrics import PSNR_CEILING_DB, hole_psnr, masked_l1, seam_gradient_error, seam_pairs, ssim


def center_hole(size: int = 8, start: int = 2, side: int = 4) -> np.ndarray:
    hole = np.zeros((size, size), dtype=bool)
    hole[start : start + side, start : start + side] = True
    return hole


def test_psnr_of_a_known_error_ignores_known_pixels() -> None:
    truth = np.full((8, 8, 3), 100, dtype=np.uint8)
    hole = center_hole()
    result = truth.copy()
    result[hole] += 10  # MSE 100 in the hole
    result[0, 0] = 0  # a wrong known pixel must not count
    assert hole_psnr(result, truth, hole) == pytest.approx(10 * math.log10(255**2 / 100))  # 28.13 dB


def test_psnr_of_a_perfect_fill_is_the_rounding_ceiling_not_infinity() -> None:
    truth = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert hole_psnr(truth, truth, center_hole()) == pytest.approx(PSNR_CEILING_DB)
    assert PSNR_CEILING_DB == pytest.approx(58.92, abs=0.01)


def test_masked_l1_on_the_unit_scale() -> None:
    truth = np.zeros((8, 8, 3), dtype=np.uint8)
    hole = center_hole()
    result = truth.copy()
    result[hole] = 51
    result[~hole] = 255  # known pixels do not count
    assert masked_l1(result, truth, hole) == pytest.approx(0.2)


def test_ssim_is_one_when_identical_and_falls_with_damage() -> None:
    truth = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert ssim(truth, truth) == pytest.approx(1.0)
    worse = truth.copy()
    worse[4:12, 4:12] = 128
    assert ssim(worse, truth) < 0.9


def test_seam_pairs_of_a_square_hole() -> None:
    first, second = seam_pairs(center_hole())  # a 4x4 square has 4 edges of 4 crossings
    assert len(first) == len(second) == 16
    hole = center_hole()
    assert all(hole[tuple(a)] != hole[tuple(b)] for a, b in zip(first, second, strict=True))
    assert np.abs(first - second).sum(axis=1).tolist() == [1] * 16  # 4-neighbours


def test_seam_error_is_zero_for_a_fill_that_continues_a_smooth_ramp() -> None:
    ramp = np.add.outer(np.arange(8) * 10, np.arange(8) * 5).astype(np.uint8)
    truth = np.repeat(ramp[..., None], 3, axis=2)
    hole = center_hole()
    fill = truth.copy()
    fill[hole] = 0
    ys, xs = np.nonzero(hole)
    fill[ys, xs] = (ys * 10 + xs * 5)[:, None]  # the plane fitted to the known pixels, continued
    assert seam_gradient_error(fill, truth, hole) == 0.0


def test_seam_error_of_a_flat_offset_is_the_jump() -> None:
    truth = np.full((8, 8, 3), 100, dtype=np.uint8)
    hole = center_hole()
    result = truth.copy()
    result[hole] = 130  # a 30-level step at every crossing, none deeper in the hole
    assert seam_gradient_error(result, truth, hole) == pytest.approx(30 / 255)
    deep = truth.copy()
    deep[3:5, 3:5] = 0  # wrong only away from the seam
    assert seam_gradient_error(deep, truth, hole) == 0.0
