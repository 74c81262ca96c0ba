"""Uploads to model resolution and back: known pixels survive byte for byte, holes are filled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.engine import MaskError, ParamsError, finish, make_mask, prepare
from app.engine.poisson import poisson_fill
from app.engine.window import model_window

R = 64


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth picture with texture, so resampling and blending have something to get wrong."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    noise = np.random.default_rng(seed).integers(0, 20, (height, width, 3))
    base = np.stack([200 * x + 20, 150 * y + 40, 100 * (x + y) / 2 + 80], axis=-1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def centre_hole(height: int, width: int) -> np.ndarray:
    hole = np.zeros((height, width), dtype=bool)
    hole[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return hole


@pytest.mark.parametrize("blend", ["poisson", "none"])
@pytest.mark.parametrize("size", [(64, 64), (192, 128), (100, 37)])
def test_known_pixels_byte_identical(blend: str, size: tuple[int, int]) -> None:
    image, hole = photo(*size), centre_hole(*size)
    generated = torch.rand(3, R, R, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = finish(image, hole, generated, blend=blend)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~hole], image[~hole])
    assert not np.array_equal(out[hole], image[hole])


def test_non_square_3x_upload_round_trip() -> None:
    """A 192x128 upload: the model sees its centre square around the hole, the answer has the upload's size."""
    image, hole = photo(128, 192), centre_hole(128, 192)
    prepared = prepare(image, hole, R)
    assert prepared.target.shape == (3, R, R) and prepared.hole.shape == (R, R)
    # the square is undistorted and still follows the source's left-to-right ramp
    assert prepared.target[0, 0, -1] > prepared.target[0, 0, 0] + 1.0
    # the fill is the generator's output, scaled back: a flat grey fill comes back flat grey inside the hole
    out = finish(image, hole, torch.zeros(3, R, R), blend="none", edge=None)
    assert out.shape == (128, 192, 3)
    assert np.all(out[hole] == 128)


def test_prepare_marks_a_model_pixel_as_hole_if_any_source_pixel_under_it_is() -> None:
    image = photo(192, 192)
    hole = np.zeros((192, 192), dtype=bool)
    hole[100, 50] = True  # one source pixel: model pixel (33, 16) at scale 3
    prepared = prepare(image, hole, R)
    assert prepared.hole.sum() == 1 and prepared.hole[33, 16]
    assert prepared.target[:, 33, 16].eq(0).all()  # no damaged value reaches the search


def test_hole_pixels_never_leak_into_known_target_pixels() -> None:
    """Garbage in the hole must not change any known model-resolution pixel."""
    image, hole = photo(150, 110), make_mask("strokes", 150, np.random.default_rng(0))[:, :110]
    damaged = image.copy()
    damaged[hole] = np.random.default_rng(1).integers(0, 256, (int(hole.sum()), 3))
    clean, dirty = prepare(image, hole, R), prepare(damaged, hole, R)
    assert torch.equal(clean.hole, dirty.hole)
    assert torch.equal(clean.target, dirty.target)


def test_upload_smaller_than_the_model_round_trips() -> None:
    image, hole = photo(30, 40), centre_hole(30, 40)
    prepared = prepare(image, hole, R)
    # upscaled, each model pixel lies under one source pixel: the hole keeps its share of the 30x30 square
    window = model_window(hole, R)
    assert window is not None and prepared.hole.float().mean() == pytest.approx(hole[window].mean(), abs=0.05)
    out = finish(image, hole, torch.zeros(3, R, R))
    assert out.shape == (30, 40, 3) and np.array_equal(out[~hole], image[~hole])


def test_prepare_at_model_resolution_keeps_pixels() -> None:
    image, hole = photo(R, R), centre_hole(R, R)
    prepared = prepare(image, hole, R)
    assert torch.equal(prepared.hole, torch.from_numpy(hole))
    expected = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(prepared.target[:, ~prepared.hole], expected[:, ~prepared.hole])


@pytest.mark.parametrize("call", [prepare, lambda image, hole, r: finish(image, hole, torch.zeros(3, r, r))])
def test_mask_of_another_size_raises(call) -> None:
    with pytest.raises(MaskError, match="same width and height"):
        call(photo(64, 64), centre_hole(64, 65), R)


@pytest.mark.parametrize(("fill", "message"), [(False, "no pixel"), (True, "every pixel")])
def test_empty_and_all_hole_masks_raise(fill: bool, message: str) -> None:
    with pytest.raises(MaskError, match=message):
        prepare(photo(80, 80), np.full((80, 80), fill), R)


def test_fine_mask_that_covers_every_model_pixel_raises() -> None:
    hole = np.zeros((256, 256), dtype=bool)
    hole[::2, ::2] = True  # a quarter of the photo, but in every 4x4 footprint
    with pytest.raises(MaskError, match="every pixel touches the hole"):
        prepare(photo(256, 256), hole, R)


def test_unknown_blend_raises() -> None:
    with pytest.raises(ParamsError, match="blend"):
        finish(photo(64, 64), centre_hole(64, 64), torch.zeros(3, R, R), blend="telea")


def test_poisson_removes_a_constant_offset_at_the_seam() -> None:
    """A fill that is right up to a constant shift comes back right: only its gradients are kept."""
    image = photo(40, 40).astype(np.float64)
    hole = centre_hole(40, 40)
    out = poisson_fill(image, image + 30.0, hole)
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_poisson_handles_holes_on_the_border() -> None:
    """A torn corner and a missing left half (seamlessClone's weak spots) blend smoothly."""
    image = photo(48, 64).astype(np.float64)
    corner, left = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
    corner[:20, :20] = True
    left[:, :32] = True
    for hole in (corner, left):
        out = poisson_fill(image, image - 50.0, hole)
        np.testing.assert_allclose(out, image, atol=1e-6)
