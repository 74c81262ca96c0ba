"""app.engine.separable: OpenCV's resizes as weight matrices, and the finish that makes only the hole's part."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from app.engine.compose import _window_fill, blend_base, hole_box, model_window
from app.engine.resize import area_resize
from app.engine.separable import MAX_WEIGHTS, separable, touched

# OpenCV's float32 rounding against the matrices' (levels, on 0..255)
ROUNDING = 2e-4
CASES = [
    ((64, 64), (886, 886), cv2.INTER_CUBIC),  # the generator's answer up to a 1280x886 photo's window
    ((64, 64), (300, 120), cv2.INTER_CUBIC),  # up, by a different factor along each axis
    ((886, 886), (256, 256), cv2.INTER_LINEAR),  # the window down to the blend's size: area
    ((256, 256), (886, 886), cv2.INTER_LINEAR),  # the blend's correction back up
    ((100, 100), (50, 100), cv2.INTER_LINEAR),  # one side kept: the identity along it
    ((7, 9), (3, 2), cv2.INTER_LINEAR),
]


@pytest.mark.parametrize(("shape", "size", "up"), CASES)
def test_separable_is_area_resize_and_a_part_of_it_is_its_part(
    shape: tuple[int, int], size: tuple[int, int], up: int
) -> None:
    picture = np.random.default_rng(0).uniform(0, 255, (*shape, 3)).astype(np.float32)
    resize = separable(shape, size, up)
    assert resize is not None
    expected = area_resize(picture, size, up)
    assert np.abs(resize(picture) - expected).max() < ROUNDING
    part = (slice(size[1] // 3, size[1] // 2 + 1), slice(size[0] // 5, size[0] - 1))
    assert np.abs(resize[part](picture) - expected[part]).max() < ROUNDING
    grey = picture[..., 0]
    assert np.abs(resize(grey) - area_resize(grey, size, up)).max() < ROUNDING


def test_a_resize_after_another_is_both_in_one() -> None:
    picture = np.random.default_rng(1).uniform(0, 255, (64, 64, 3)).astype(np.float32)
    up, down = separable((64, 64), (500, 400), cv2.INTER_CUBIC), separable((400, 500), (200, 160))
    assert up is not None and down is not None
    expected = area_resize(area_resize(picture, (500, 400), cv2.INTER_CUBIC), (200, 160))
    assert np.abs(down.after(up)(picture) - expected).max() < ROUNDING


def test_a_resize_that_grows_one_side_and_shrinks_the_other_is_not_separated() -> None:
    """OpenCV then blends its area and linear filters along both axes: no pair of 1-D weights reproduces it."""
    assert separable((64, 64), (40, 200), cv2.INTER_CUBIC) is None
    assert separable((300, 120), (256, 102)) is None


def test_an_axis_with_too_many_weights_is_not_separated() -> None:
    """A 25-megapixel photo's axis brought to a megapixel's would keep 4000x6000 weights: OpenCV resizes it."""
    side = MAX_WEIGHTS // 256 + 1
    assert separable((side, 300), (256, 256)) is None
    assert separable((300, side), (256, 256)) is None
    assert separable((side - 1, 300), (256, 256)) is not None


def test_touched_is_which_pixels_of_the_shrunk_mask_are_above_zero() -> None:
    """To the bit: masks from a single pixel to a third missing, shrunk by factors whole and not."""
    rng = np.random.default_rng(3)
    for _ in range(60):
        height, width = (int(n) for n in rng.integers(20, 600, 2))
        mask = rng.random((height, width)) < rng.choice([0.0005, 0.01, 0.3])
        size = (int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1)))
        assert np.array_equal(touched(mask, size), area_resize(mask.astype(np.float32), size) > 0), (mask.shape, size)
    assert not touched(np.zeros((50, 40), dtype=bool), (20, 25)).any()


@pytest.mark.parametrize("blend", [True, False])
def test_the_finish_makes_the_hole_s_part_of_the_window_as_the_whole_window_has_it(blend: bool) -> None:
    """A hole small against its photo: the fill and its blend made over the hole's box alone (matrices) match
    the box cut from the fill made over the whole window (OpenCV's resizes) to float rounding."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)
    hole = np.zeros((600, 800), dtype=bool)
    hole[250:330, 380:450] = True
    generated = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    window = model_window(hole, 64)
    assert window is not None
    base = blend_base(image[window], hole[window], 256) if blend else None
    assert base is None or base.size is not None  # solved smaller than the window: the path the matrices take
    box = hole_box(hole)
    region = tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, window, strict=True))
    whole = _window_fill(generated, hole[window].shape, base)
    part = _window_fill(generated, hole[window].shape, base, (region[0], region[1]))
    assert part.shape == whole[region].shape
    assert np.abs(part - whole[region]).max() < 10 * ROUNDING
