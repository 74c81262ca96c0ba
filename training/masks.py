"""Seeded hole-mask families at one size, shared by encoder training, tests, bench and evaluation.

Every mask is an (R, R) bool array, True = missing, never empty and never all-hole.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np


class MaskKindError(ValueError):
    """A mask family or size that no family here can draw."""


# strokes and blocks grow until their hole covers a share drawn from this range
GROWN_SHARE = (0.10, 0.35)


def center(size: int, rng: np.random.Generator) -> np.ndarray:
    """A centred square of half the side: a quarter of the image, Yeh et al.'s main case."""
    hole = np.zeros((size, size), dtype=bool)
    start = size // 4
    hole[start : start + size // 2, start : start + size // 2] = True
    return hole


def random80(size: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly 80 % of the pixels missing, scattered uniformly (Yeh et al.'s 'random' mask)."""
    flat = np.zeros(size * size, dtype=bool)
    flat[rng.permutation(size * size)[: round(0.8 * size * size)]] = True
    return flat.reshape(size, size)


def half(size: int, rng: np.random.Generator) -> np.ndarray:
    """The left, right, top or bottom half missing."""
    hole = np.zeros((size, size), dtype=bool)
    side = int(rng.integers(4))
    if side == 0:
        hole[:, : size // 2] = True
    elif side == 1:
        hole[:, size - size // 2 :] = True
    elif side == 2:
        hole[: size // 2] = True
    else:
        hole[size - size // 2 :] = True
    return hole


def strokes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Free-form brush strokes (random walks with a round brush), as in free-form inpainting benchmarks."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    goal = rng.uniform(*GROWN_SHARE)
    while canvas.mean() < goal:
        width = max(1, int(rng.integers(max(2, size // 20), max(3, size // 8) + 1)))
        x, y = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 9))):
            angle += rng.uniform(-np.pi / 3, np.pi / 3)
            length = rng.uniform(size / 10, size / 4)
            nx = float(np.clip(x + length * np.cos(angle), 0, size - 1))
            ny = float(np.clip(y + length * np.sin(angle), 0, size - 1))
            cv2.line(canvas, (round(x), round(y)), (round(nx), round(ny)), 1, width, lineType=cv2.LINE_8)
            x, y = nx, ny
    return canvas.astype(bool)


def blocks(size: int, rng: np.random.Generator) -> np.ndarray:
    """Several axis-aligned rectangles (stamps, torn corners) of 1/8 to 1/3 of the side."""
    hole = np.zeros((size, size), dtype=bool)
    goal = rng.uniform(*GROWN_SHARE)
    low, high = max(1, size // 8), max(2, size // 3)
    while hole.mean() < goal:
        h, w = rng.integers(low, high + 1, 2)
        top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        hole[top : top + h, left : left + w] = True
    return hole


MASKS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "center": center,
    "random80": random80,
    "half": half,
    "strokes": strokes,
    "blocks": blocks,
}
MASK_KINDS = tuple(MASKS)


def make_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """An (size, size) bool hole of family `kind`, drawn from `rng`."""
    if kind not in MASKS:
        raise MaskKindError(f"unknown mask kind {kind!r}: choose one of {', '.join(MASK_KINDS)}")
    if size < 8:
        raise MaskKindError(f"mask size must be at least 8 pixels, got {size}")
    hole = MASKS[kind](size, rng)
    assert hole.shape == (size, size) and hole.any() and not hole.all(), kind
    return hole
