"""`bench --finish`: what turning a search's answer into the upload costs as uploads grow.

The first release Poisson-blended at the upload's full size (a sparse solve
over every hole pixel); the service now solves the blend on at most
MAX_BLEND_SIDE a side and makes the edge fill at most MAX_EDGE_PIXELS large.
Both run here on the same upload, a real face scaled up with its right half
missing, so the table shows the bound and what it replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

import cv2
import numpy as np
import torch

from app.engine.compose import finish
from app.engine.poisson import poisson_fill
from training.data import to_pixels, to_signed

# the first release's full-size solve is only timed up to this many hole pixels (beyond: minutes)
FULL_SIZE_LIMIT = 600_000


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _first_release(image: np.ndarray, hole: np.ndarray, generated: torch.Tensor) -> np.ndarray:
    fill = to_pixels(generated).permute(1, 2, 0).numpy()
    fill = cv2.resize(fill, (hole.shape[1], hole.shape[0]), interpolation=cv2.INTER_CUBIC)
    return poisson_fill(image.astype(np.float64), fill.astype(np.float64), hole)


def bench_finish(face: np.ndarray, sides: Sequence[int], resolution: int, out: TextIO) -> None:
    """One row per side: hole pixels, the service's finish with and without the edge fill, the first release's."""
    generated = torch.from_numpy(cv2.resize(face, (resolution, resolution), interpolation=cv2.INTER_AREA))
    generated = to_signed(generated.permute(2, 0, 1))
    out.write("| upload | hole pixels | finish (edge fill) s | finish (edge=none) s | first release (full blend) s |\n")
    out.write("|---|---:|---:|---:|---:|\n")
    for side in sides:
        image = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        hole = np.zeros((side, side), dtype=bool)
        hole[:, side // 2 :] = True
        with_edge = _seconds(lambda: finish(image, hole, generated))  # noqa: B023 (called at once)
        without = _seconds(lambda: finish(image, hole, generated, edge=None))  # noqa: B023
        count = int(hole.sum())
        if count <= FULL_SIZE_LIMIT:
            first = f"{_seconds(lambda: _first_release(image, hole, generated)):.2f}"  # noqa: B023
        else:
            first = "not run (minutes)"
        out.write(f"| {side}x{side} | {count:,} | {with_edge:.2f} | {without:.2f} | {first} |\n")
        out.flush()
