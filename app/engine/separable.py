"""OpenCV's resizes as pairs of weight matrices, so that a part of a resized image costs only that part.

The finish wants the generator's 64x64 answer brought up to the model's window (886x886 on a 1280x886
photo) only over the hole's box, and at the blend's 256x256 only as an average: as matrices, the first
is a slice of rows and columns and the second one small product, and the window's megapixel is never
made (6.5 -> 2.5 ms a request at 1280x886, see docs/bench/outside-the-model).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from app.engine.resize import area_interpolation


@lru_cache(maxsize=32)
def _axis(n_in: int, n_out: int, interpolation: int) -> np.ndarray:
    """(n_out, n_in) float32: OpenCV's weights along one axis, read by resizing the identity along it alone."""
    weights = cv2.resize(np.eye(n_in, dtype=np.float32), (n_in, n_out), interpolation=interpolation)
    weights.flags.writeable = False  # shared by every caller through the cache
    return weights


def _span(weights: np.ndarray) -> slice:
    """The input indices some output reads: a band matrix cut to its rows reads a short run of them."""
    used = np.flatnonzero(weights.any(axis=0))
    return slice(int(used[0]), int(used[-1]) + 1) if used.size else slice(0, 0)


@dataclass(frozen=True)
class Separable:
    """out = rows @ a @ cols.T along the first two axes of (H, W[, C]): rows (h, H), cols (w, W)."""

    rows: np.ndarray
    cols: np.ndarray

    def __getitem__(self, region: tuple[slice, slice]) -> Separable:
        """Only `region` of the output."""
        return Separable(self.rows[region[0]], self.cols[region[1]])

    def after(self, first: Separable) -> Separable:
        """This resize of `first`'s output, as one resize of `first`'s input."""
        return Separable(self.rows @ first.rows, self.cols @ first.cols)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        """(h, w[, C]) float32 from (H, W[, C]), reading only the input rows and columns some output needs."""
        in_rows, in_cols = _span(self.rows), _span(self.cols)
        part = array[in_rows, in_cols].astype(np.float32, copy=False)
        tall = np.tensordot(self.rows[:, in_rows], part, axes=(1, 0))  # (h, W', C)
        return np.ascontiguousarray(np.moveaxis(np.tensordot(tall, self.cols[:, in_cols], axes=(1, 1)), -1, 1))


def separable(shape: tuple[int, int], size: tuple[int, int], up: int = cv2.INTER_LINEAR) -> Separable | None:
    """`area_resize` of an (H, W) = `shape` image to `size` = (width, height) as a Separable, to float32
    rounding; None where one side grows and the other shrinks: OpenCV then blends the two filters along
    both axes, and the caller resizes the whole image instead."""
    (height, width), (out_width, out_height) = shape, size
    interpolation = area_interpolation(shape, size, up)
    if interpolation == cv2.INTER_AREA and (out_width > width or out_height > height):
        return None
    return Separable(_axis(height, out_height, interpolation), _axis(width, out_width, interpolation))
