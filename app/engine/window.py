"""Which square of a photo the model sees: training saw centre-cropped squares, never stretched ones.

A square upload is seen whole. A wider or taller one is seen through the
square of its short side that holds the most of the hole (nearest the centre
where that ties), so a face keeps its proportions; hole pixels outside that
square get the classical fill. Where that square would leave the model no
known pixel at its resolution, the whole upload is stretched to the square
instead, as the first release did for every upload.
"""

from __future__ import annotations

import numpy as np

from app.engine.resize import box_resize

Window = tuple[slice, slice]


def _best_square(hole: np.ndarray) -> Window:
    height, width = hole.shape
    side = min(height, width)
    counts = hole.sum(axis=0 if width > height else 1).astype(np.int64)
    cumulative = np.concatenate([[0], np.cumsum(counts)])
    inside = cumulative[side:] - cumulative[:-side]  # hole pixels in the square starting at each offset
    offsets = np.flatnonzero(inside == inside.max())
    start = int(offsets[np.argmin(np.abs(offsets - (len(counts) - side) / 2))])
    span = slice(start, start + side)
    return (slice(0, height), span) if width > height else (span, slice(0, width))


def _windowed(hole: np.ndarray, resolution: int) -> tuple[Window, np.ndarray] | None:
    """The best square and its hole at `resolution`; None where the upload is square or the square leaves the
    model no known pixel."""
    height, width = hole.shape
    if height == width:
        return None
    window = _best_square(hole)
    small_hole = box_resize(hole[window].astype(np.float32), resolution) > 0
    return None if small_hole.all() else (window, small_hole)


def model_window(hole: np.ndarray, resolution: int) -> Window | None:
    """The square the model sees, or None for the whole upload stretched to the square."""
    found = _windowed(hole, resolution)
    return None if found is None else found[0]


def model_view(hole: np.ndarray, resolution: int) -> tuple[Window | None, np.ndarray]:
    """`model_window` and the hole the model sees at `resolution`: a model pixel is missing where any hole pixel
    lies under it. One box filter of the hole serves both (1 ms of a 1280x886 upload's preparation)."""
    found = _windowed(hole, resolution)
    if found is not None:
        return found
    return None, box_resize(hole.astype(np.float32), resolution) > 0
