"""Destroy a hole's pixels before any method sees the photo.

If the hole kept its true pixels, anything that reads them (Poisson blending's
boundary at the image border, a resampling filter's footprint, an inpainting
radius that overlaps the mask edge) would copy ground truth into the answer
and inflate its score. Noise carries nothing, so every method starts equal.
"""

from __future__ import annotations

import numpy as np


def destroy(image: np.ndarray, hole: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 `image` with uniform noise in every hole pixel."""
    assert image.dtype == np.uint8 and image.shape[:2] == hole.shape, (image.dtype, image.shape, hole.shape)
    damaged = image.copy()
    damaged[hole] = rng.integers(0, 256, (int(hole.sum()), image.shape[2]), dtype=np.uint8)
    return damaged
