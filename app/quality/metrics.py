"""Per-image quality figures of a completed photo against its ground truth.

Every function takes (H, W, 3) uint8 images and an (H, W) bool hole (True =
filled by the method), so a figure is computed on the bytes a user gets back.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.metrics import structural_similarity

# PSNR ceiling: uint8 rounding alone leaves an error of variance 1/12, so a perfect
# fill (e.g. Telea on a pure white background) scores this instead of infinity,
# which would make every mean over images infinite.
PSNR_CEILING_DB = 10 * math.log10(255.0**2 * 12)


def _check(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> None:
    assert result.shape == truth.shape and result.ndim == 3, (result.shape, truth.shape)
    assert hole.shape == truth.shape[:2] and hole.dtype == np.bool_ and hole.any(), (hole.shape, hole.dtype)


def hole_psnr(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """PSNR in dB over the hole's pixels and channels only (Yeh et al., Table 1); known pixels would flatter it."""
    _check(result, truth, hole)
    error = result[hole].astype(np.float64) - truth[hole].astype(np.float64)
    mse = max(float(np.mean(error**2)), 1 / 12)
    return 10 * math.log10(255.0**2 / mse)


def ssim(result: np.ndarray, truth: np.ndarray) -> float:
    """Whole-image SSIM (scikit-image, 7x7 window, per channel then averaged): structure, not just error."""
    assert result.shape == truth.shape and result.ndim == 3, (result.shape, truth.shape)
    return float(structural_similarity(truth, result, channel_axis=2, data_range=255))


def masked_l1(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Mean absolute error over the hole, on a [0, 1] intensity scale."""
    _check(result, truth, hole)
    return float(np.abs(result[hole].astype(np.float64) - truth[hole].astype(np.float64)).mean() / 255.0)


def seam_pairs(hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) row/col indices of each side of every 4-neighbour pair that straddles the hole's edge."""
    first, second = [], []
    for axis in (0, 1):
        a = hole[:-1, :] if axis == 0 else hole[:, :-1]
        b = hole[1:, :] if axis == 0 else hole[:, 1:]
        rows, cols = np.nonzero(a != b)
        first.append(np.stack([rows, cols], 1))
        second.append(np.stack([rows + (axis == 0), cols + (axis == 1)], 1))
    return np.concatenate(first), np.concatenate(second)


def seam_gradient_error(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Mean |step across the seam in the result - the same step in the truth|, [0, 1] scale.

    Taken over every pair of 4-neighbours with one pixel in the hole and one
    known, per channel. A visible seam is a jump the photo did not have; a
    fill that continues the photo's own gradient scores zero whatever its
    colours deep inside the hole.
    """
    _check(result, truth, hole)
    first, second = seam_pairs(hole)
    if len(first) == 0:  # the hole has no known neighbour: nothing to join (cannot happen for a proper hole)
        return 0.0

    def step(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float64)
        return image[first[:, 0], first[:, 1]] - image[second[:, 0], second[:, 1]]

    return float(np.abs(step(result) - step(truth)).mean() / 255.0)


def _laplacian(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return np.asarray(cv2.Laplacian(grey, cv2.CV_64F, ksize=1))


def hole_sharpness(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Variance of the Laplacian inside the hole, as a share of the original's: 1 keeps its detail, 0 is a blur.

    A fill upscaled from the model's 64x64 onto a 200x200 photo scores well
    below 1 even when its colours are right; this is the figure that shows it.
    A flat original (variance 0) counts as kept. Any edge counts, the original's
    or not, so a seam or noise scores above 1 (see `hole_gms`), and a nearly flat
    original makes the ratio explode: `evaluate` reports its median, not its mean.
    """
    _check(result, truth, hole)
    original = float(_laplacian(truth)[hole].var())
    return float(_laplacian(result)[hole].var()) / original if original > 0 else 1.0


# Xue et al., "Gradient Magnitude Similarity Deviation" (2014): Prewitt gradients and
# this constant for [0, 255] luminance; it keeps a flat fill of a flat region at 1.
GMS_C = 170.0
_PREWITT = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float64) / 3


def _gradient_magnitude(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    dx = cv2.filter2D(grey, cv2.CV_64F, _PREWITT, borderType=cv2.BORDER_REPLICATE)
    dy = cv2.filter2D(grey, cv2.CV_64F, _PREWITT.T, borderType=cv2.BORDER_REPLICATE)
    return np.asarray(np.hypot(dx, dy))


def hole_gms(result: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Gradient-magnitude similarity to the original inside the hole, in (0, 1]: 1 is the original's detail.

    Mean over hole pixels of (2 g_r g_o + c) / (g_r^2 + g_o^2 + c), g the Prewitt
    gradient magnitude of the luminance (3x3, so a hole pixel's gradient sees the
    seam) and c = GMS_C. Unlike `hole_sharpness`, more edges are not more
    detail: a seam or noise puts gradients where the original has none, and a
    blur removes those it has; both lower the score. Only the original's own
    edges, in its own places and strengths, reach 1.
    """
    _check(result, truth, hole)
    g_r, g_o = _gradient_magnitude(result)[hole], _gradient_magnitude(truth)[hole]
    return float(np.mean((2 * g_r * g_o + GMS_C) / (g_r**2 + g_o**2 + GMS_C)))
