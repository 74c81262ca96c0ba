"""The hole's pixels are destroyed, and no method (baselines or the search's finish) can read them back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.engine import finish, make_mask
from app.quality.baselines import BASELINES, mean_fill
from app.quality.damage import destroy


def photo(seed: int = 0) -> np.ndarray:
    """A smooth 32x32 colour ramp with some texture, like a small photo."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(32), np.arange(32)) * 3.0
    base = np.stack([ramp, 255 - ramp, np.full_like(ramp, 90)], axis=2)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def test_destroy_replaces_only_the_hole_with_noise() -> None:
    image = photo()
    hole = make_mask("center", 32, np.random.default_rng(0))
    damaged = destroy(image, hole, np.random.default_rng(1))
    np.testing.assert_array_equal(damaged[~hole], image[~hole])
    assert (damaged[hole] != image[hole]).mean() > 0.9  # a uniform draw matches by chance 1 time in 256
    np.testing.assert_array_equal(damaged, destroy(image, hole, np.random.default_rng(1)))


def test_mean_fill_is_the_known_mean() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[:, 4:] = 100
    hole = np.zeros((8, 8), dtype=bool)
    hole[0, 0] = True
    filled = mean_fill(image, hole)
    expected = np.rint(100 * 32 / 63)  # 63 known pixels, 32 of them at 100
    assert (filled[0, 0] == expected).all()
    np.testing.assert_array_equal(filled[~hole], image[~hole])


@pytest.mark.parametrize("kind", ["center", "half", "blocks"])
def test_no_method_reads_the_hole(kind: str) -> None:
    """Two different noises in the hole give byte-identical answers from every method."""
    image, hole = photo(), make_mask(kind, 32, np.random.default_rng(2))
    first = destroy(image, hole, np.random.default_rng(3))
    second = destroy(image, hole, np.random.default_rng(4))
    generated = torch.rand(3, 32, 32) * 2 - 1
    for name, fill in BASELINES.items():
        np.testing.assert_array_equal(fill(first, hole), fill(second, hole), err_msg=name)
        np.testing.assert_array_equal(fill(first, hole)[~hole], image[~hole], err_msg=name)
    for blend in ("poisson", "none"):
        np.testing.assert_array_equal(finish(first, hole, generated, blend), finish(second, hole, generated, blend))


def test_telea_and_ns_restore_a_flat_photo() -> None:
    """Within Telea's own few levels of weighting error (measured: 3 on this case), not a blur of the noise."""
    image = np.full((32, 32, 3), 77, dtype=np.uint8)
    hole = make_mask("center", 32, np.random.default_rng(0))
    damaged = destroy(image, hole, np.random.default_rng(0))
    for name in ("telea", "ns"):
        assert np.abs(BASELINES[name](damaged, hole).astype(int) - 77).max() <= 3, name
