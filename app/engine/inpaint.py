"""OpenCV's classical inpainting on a photo at its own size: the baselines, and the fill near a hole's edge.

Each takes the damaged (H, W, 3) uint8 photo and its (H, W) bool hole and
returns the photo with only the hole rewritten.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

# OpenCV's documented example radius; a larger one blurs more without filling better
INPAINT_RADIUS = 3

Inpaint = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _inpaint(damaged: np.ndarray, hole: np.ndarray, flags: int) -> np.ndarray:
    # OpenCV's Telea reads some hole pixels where the hole meets the image border
    # (tests/quality/test_baselines.py caught it); blanking them makes the answer
    # a function of the known pixels alone.
    blank = damaged.copy()
    blank[hole] = 0
    filled = cv2.inpaint(blank, hole.astype(np.uint8), INPAINT_RADIUS, flags)
    out = damaged.copy()
    out[hole] = filled[hole]  # cv2 leaves known pixels alone already; this makes it a guarantee
    return out


def telea(damaged: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Telea (2004) fast marching: each hole pixel from a weighted average of known pixels nearby."""
    return _inpaint(damaged, hole, cv2.INPAINT_TELEA)


def navier_stokes(damaged: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Bertalmio et al. (2001): propagates isophotes into the hole as a fluid flow."""
    return _inpaint(damaged, hole, cv2.INPAINT_NS)


INPAINTS: dict[str, Inpaint] = {"telea": telea, "ns": navier_stokes}
