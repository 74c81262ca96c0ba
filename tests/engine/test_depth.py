"""The edge fill: classical near the hole's edge, the generator's own fill deep inside, known pixels untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.engine import ParamsError, finish
from app.engine.compose import blended_fill, compose
from app.engine.depth import EdgeFill, generator_weight, model_pixel
from tests.engine.test_compose import centre_hole, photo

R = 32
EDGE = EdgeFill("telea", near=0.0, far=2.0)


def _generated(seed: int = 0) -> torch.Tensor:
    return torch.rand(3, R, R, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_weight_is_zero_outside_rises_with_depth_and_is_one_deeper_than_far() -> None:
    hole = centre_hole(256, 256)  # a 128-pixel square: 16 model pixels deep at 8 photo pixels per model pixel
    weight = generator_weight(hole, model_pixel(hole.shape, R), EDGE)
    assert model_pixel(hole.shape, R) == 8.0
    assert np.all(weight[~hole] == 0)
    row = weight[128, 64:128]  # from the hole's left edge to its centre
    assert np.all(np.diff(row) >= 0) and row[0] < 0.05
    assert np.all(row[16:] == 1.0)  # 2 model pixels = 16 photo pixels from the edge on


@pytest.mark.parametrize("size", [(256, 256), (300, 170), (64, 64)])
@pytest.mark.parametrize("blend", ["poisson", "none"])
def test_known_pixels_byte_identical(size: tuple[int, int], blend: str) -> None:
    image, hole = photo(*size), centre_hole(*size)
    out = finish(image, hole, _generated(), blend=blend, edge=EDGE)
    assert np.array_equal(out[~hole], image[~hole])
    assert not np.array_equal(out[hole], image[hole])


def test_deep_pixels_are_the_generator_fill_exactly() -> None:
    """Deeper than `far` model pixels, the answer is the blended generator fill to the byte."""
    image, hole = photo(256, 256), centre_hole(256, 256)
    with_edge = finish(image, hole, _generated(), edge=EDGE)
    without = finish(image, hole, _generated(), edge=None)
    deep = generator_weight(hole, model_pixel(hole.shape, R), EDGE) == 1.0
    assert deep.sum() > 0.4 * hole.sum()
    assert np.array_equal(with_edge[deep], without[deep])
    assert not np.array_equal(with_edge[hole & ~deep], without[hole & ~deep])


def test_continuous_at_the_edge_even_against_a_far_off_fill() -> None:
    """A fill over 100 levels off the photo: without blending it jumps at the seam, with the edge fill it does not."""
    image = photo(256, 256)
    hole = centre_hole(256, 256)
    generated = torch.ones(3, R, R)  # flat white, far from the dark ramp around the hole

    def seam_step(out: np.ndarray) -> float:
        rows = slice(80, 176)
        inside, outside = out[rows, 64].astype(float), out[rows, 63].astype(float)
        return float(np.abs(inside - outside).mean())

    truth_step = seam_step(image)  # the photo's own step between neighbours (ramp + noise)
    assert seam_step(finish(image, hole, generated, blend="none", edge=None)) > 100
    assert seam_step(finish(image, hole, generated, blend="none", edge=EDGE)) < truth_step + 5


def test_a_thin_scratch_is_filled_from_the_photo_not_the_generator() -> None:
    """A 3-pixel scratch on a 512x512 photo is far thinner than one model pixel: the generator barely shows."""
    image = photo(512, 512)
    hole = np.zeros((512, 512), dtype=bool)
    hole[:, 250:253] = True
    generated = torch.full((3, R, R), -1.0)  # black: any share of it would show as a dark line
    out = finish(image, hole, generated, edge=EDGE)
    assert np.abs(out[hole].astype(int) - image[hole].astype(int)).mean() < 12
    assert np.array_equal(out[~hole], image[~hole])


def test_compose_with_the_blended_fill_is_finish() -> None:
    image, hole = photo(200, 200), centre_hole(200, 200)
    fill = blended_fill(image, hole, _generated())
    assert np.array_equal(compose(image, hole, fill, R, EDGE), finish(image, hole, _generated(), edge=EDGE))


def test_a_large_upload_is_blended_and_edge_filled_at_a_bounded_size() -> None:
    """3000x2000 with its right half missing (3 million unknowns): solved small, known pixels still exact."""
    image = photo(2000, 3000)
    hole = np.zeros((2000, 3000), dtype=bool)
    hole[:, 1500:] = True
    out = finish(image, hole, _generated(), edge=EDGE)
    assert np.array_equal(out[~hole], image[~hole])
    # the blend meets the photo at the seam: the first hole column is close to the last known one
    assert np.abs(out[:, 1500].astype(int) - out[:, 1499].astype(int)).mean() < 15


@pytest.mark.parametrize(("method", "near", "far"), [("opencv", 0, 1), ("telea", 2, 1), ("ns", -1, 1)])
def test_bad_edge_settings_are_refused(method: str, near: float, far: float) -> None:
    with pytest.raises(ParamsError):
        EdgeFill(method, near, far)


def test_no_edge_fill_at_the_model_resolution() -> None:
    """A 32x32 photo on a 32x32 model: nothing finer to borrow, so the generator's blended fill everywhere."""
    image, hole = photo(32, 32), centre_hole(32, 32)
    assert np.array_equal(finish(image, hole, _generated(), edge=EDGE), finish(image, hole, _generated(), edge=None))
    weight = generator_weight(hole, 1.5, EDGE)  # half way: the classical share is halved
    full = generator_weight(hole, 2.0, EDGE)
    assert np.all(weight[hole] >= 0.5) and np.all(weight[~hole] == 0) and full[hole].min() < 0.5


def test_full_strength_from_full_at() -> None:
    """The classical share fades in linearly from 1 photo pixel per model pixel and is whole from `full_at` on."""
    hole = centre_hole(64, 64)
    early = EdgeFill("telea", 0.5, 2.0, full_at=1.5)
    assert generator_weight(hole, 1.5, early)[hole].min() < 0.1  # whole: the edge ring is nearly all classical
    assert generator_weight(hole, 1.5, EdgeFill("telea", 0.5, 2.0))[hole].min() >= 0.5  # default: half way
    assert generator_weight(hole, 1.25, early)[hole].min() >= 0.5  # half way to 1.5: half strength
    assert np.all(generator_weight(hole, 1.0, early)[hole] == 1.0)
    with pytest.raises(ParamsError):
        EdgeFill("telea", 0.5, 2.0, full_at=1.0)
