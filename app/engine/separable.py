"""OpenCV's resizes as pairs of weight matrices, so that a part of a resized image costs only that part.

The finish wants the generator's 64x64 answer brought up to the model's window (886x886 on a 1280x886
photo) only over the hole's box, and at the blend's 256x256 only as an average: as matrices, the first
is a slice of rows and columns and the second one small product, and the window's megapixel is never
made (the finish's part of it 5.9 -> 3.0 ms at 1280x886, docs/bench/outside-the-model).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from app.engine.resize import area_interpolation, area_resize

# the most weights one axis keeps (4 MB of float32): past it, e.g. a 25-megapixel photo, OpenCV resizes it whole
MAX_WEIGHTS = 1 << 20
_BLOCK = 256  # identity columns resized at a time, so reading the weights costs no (n_in, n_in) matrix


@lru_cache(maxsize=16)
def _axis(n_in: int, n_out: int, interpolation: int) -> np.ndarray:
    """(n_out, n_in) float32: OpenCV's weights along one axis, read by resizing the identity along it alone."""
    blocks = []
    for start in range(0, n_in, _BLOCK):
        columns = np.eye(n_in, min(_BLOCK, n_in - start), -start, dtype=np.float32)
        blocks.append(cv2.resize(columns, (columns.shape[1], n_out), interpolation=interpolation).reshape(n_out, -1))
    weights = np.concatenate(blocks, axis=1)
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
    rounding. None where one side grows and the other shrinks (OpenCV then blends the two filters along
    both axes) or an axis has over MAX_WEIGHTS weights: the caller resizes the whole image instead."""
    (height, width), (out_width, out_height) = shape, size
    interpolation = area_interpolation(shape, size, up)
    if interpolation == cv2.INTER_AREA and (out_width > width or out_height > height):
        return None
    if max(height * out_height, width * out_width) > MAX_WEIGHTS:
        return None
    return Separable(_axis(height, out_height, interpolation), _axis(width, out_width, interpolation))


def touched(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: `area_resize(mask, size) > 0` for an (H, W) bool `mask` shrunk to `size` = (width, height),
    the output pixels some True pixel weighs in; read from the weights' reach over the mask's True rows and
    columns alone, so a small hole in a large photo costs its own box (1.0 -> 0.4 ms at 1280x886)."""
    resize = separable(mask.shape, size)
    if resize is None:
        return area_resize(mask.astype(np.float32), size) > 0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros((size[1], size[0]), dtype=bool)
    rows_in, cols_in = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    reach_rows = (resize.rows[:, rows_in] > 0).astype(np.float32)  # sums of counts: > 0 wherever a term is
    reach_cols = (resize.cols[:, cols_in] > 0).astype(np.float32)
    return (reach_rows @ mask[rows_in, cols_in].astype(np.float32) @ reach_cols.T) > 0
