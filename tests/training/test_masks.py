"""Mask families: shape, polarity, hole share, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from training.masks import MASK_KINDS, MaskKindError, make_mask

SHARES = {
    "center": (0.25, 0.25),
    "random80": (0.8, 0.8),
    "half": (0.5, 0.5),
    "strokes": (0.1, 0.6),  # grown to a drawn share in [0.10, 0.35]; the last stroke may overshoot
    "blocks": (0.1, 0.6),
}


def test_every_family_is_covered() -> None:
    assert set(MASK_KINDS) == set(SHARES)


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("size", [32, 64, 128])
def test_shape_and_hole_share(kind: str, size: int) -> None:
    low, high = SHARES[kind]
    for seed in range(5):
        hole = make_mask(kind, size, np.random.default_rng(seed))
        assert hole.shape == (size, size) and hole.dtype == np.bool_
        pixel = 1 / size**2  # 80 % of an odd count of pixels is rounded to a whole pixel
        assert low - pixel <= hole.mean() <= high + pixel, (kind, seed, hole.mean())


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_seeded(kind: str) -> None:
    first = make_mask(kind, 64, np.random.default_rng(3))
    assert np.array_equal(first, make_mask(kind, 64, np.random.default_rng(3)))
    if kind != "center":  # the only family without randomness
        draws = [make_mask(kind, 64, np.random.default_rng(seed)) for seed in range(4, 8)]
        assert any(not np.array_equal(first, other) for other in draws)


def test_center_is_the_middle_quarter() -> None:
    hole = make_mask("center", 64, np.random.default_rng(0))
    assert hole[16:48, 16:48].all() and hole.sum() == 32 * 32


def test_strokes_are_thin_and_connected_not_blocks() -> None:
    """Brush strokes leave most of their bounding box known, unlike a block."""
    hole = make_mask("strokes", 64, np.random.default_rng(1))
    rows, cols = np.nonzero(hole)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert hole.sum() < 0.8 * box


def test_unknown_kind() -> None:
    with pytest.raises(MaskKindError, match="unknown mask kind"):
        make_mask("circle", 64, np.random.default_rng(0))
