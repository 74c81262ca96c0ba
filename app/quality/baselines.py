"""The classical fills the search has to beat: mean colour, OpenCV Telea and Navier-Stokes.

Each takes the damaged (H, W, 3) uint8 photo and its (H, W) bool hole and
returns the photo with only the hole rewritten, the contract `compose.finish`
keeps for the search, so all methods are scored on the same terms.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.engine.inpaint import navier_stokes, telea

Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]


def mean_fill(damaged: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Every hole pixel set to the mean colour of the known pixels: the floor any method must clear."""
    out = damaged.copy()
    out[hole] = np.rint(damaged[~hole].reshape(-1, damaged.shape[2]).mean(axis=0)).astype(np.uint8)
    return out


BASELINES: dict[str, Baseline] = {"mean": mean_fill, "telea": telea, "ns": navier_stokes}
