"""Hole sharpness rewards any edge; the gradient-magnitude similarity (GMS) rewards only the original's."""

from __future__ import annotations

import numpy as np
import pytest

from app.quality.metrics import GMS_C, hole_gms, hole_sharpness

SIZE = 64


def shaded_disc() -> np.ndarray:
    """A face-like original: soft shading and one sharp edge (a disc), grey in three channels."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    grey = 40 + 2.5 * x + 60 * ((x - 32) ** 2 + (y - 32) ** 2 < 15**2)
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def strokes() -> np.ndarray:
    """Thin strokes: nearly every hole pixel lies next to the seam, as in the `strokes` family."""
    hole = np.zeros((SIZE, SIZE), dtype=bool)
    for row in (12, 30, 48):
        hole[row : row + 3, 8:56] = True
    for col in (20, 40):
        hole[8:56, col : col + 3] = True
    return hole


def mean_fill(truth: np.ndarray, hole: np.ndarray, noise: float = 0.0) -> np.ndarray:
    """The `mean` baseline's fill (one colour, so a seam wherever the photo differs from it), plus grey noise."""
    fill = truth.copy()
    grain = np.random.default_rng(0).uniform(-noise, noise, (int(hole.sum()), 1))
    fill[hole] = np.clip(truth[~hole].mean(axis=0) + grain, 0, 255).round().astype(np.uint8)
    return fill


def test_the_original_scores_one_on_both() -> None:
    truth, hole = shaded_disc(), strokes()
    assert hole_sharpness(truth, truth, hole) == pytest.approx(1.0)
    assert hole_gms(truth, truth, hole) == pytest.approx(1.0)


def test_a_seam_scores_above_the_original_on_sharpness_and_low_on_gms() -> None:
    truth, hole = shaded_disc(), strokes()
    seam = mean_fill(truth, hole)
    assert hole_sharpness(seam, truth, hole) > 2  # "sharper" than the photo: the seam's edges count as detail
    assert hole_gms(seam, truth, hole) < 0.65


def test_noise_scores_far_above_the_original_on_sharpness_and_low_on_gms() -> None:
    truth, hole = shaded_disc(), strokes()
    noisy = mean_fill(truth, hole, noise=40)
    assert hole_sharpness(noisy, truth, hole) > 10
    assert hole_gms(noisy, truth, hole) < 0.55


def test_gms_of_a_ramp_where_the_original_is_flat() -> None:
    """Prewitt / 3 of a ramp of slope s is 2s; the original's is 0, so each hole pixel scores c / (4 s^2 + c)."""
    truth = np.full((16, 16, 3), 100, dtype=np.uint8)
    ramp = (100 + 10 * np.arange(16))[None, :, None].repeat(16, axis=0).repeat(3, axis=2).astype(np.uint8)
    hole = np.zeros((16, 16), dtype=bool)
    hole[4:12, 4:12] = True
    assert hole_gms(ramp, truth, hole) == pytest.approx(GMS_C / (4 * 10**2 + GMS_C))
    assert hole_gms(truth, truth, hole) == 1.0  # a flat fill of a flat original keeps all the detail there was
