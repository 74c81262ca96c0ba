"""app.engine.resize: what tells its three resizes apart."""

from __future__ import annotations

import cv2
import numpy as np

from app.engine.resize import area_resize, box_resize, box_resize_rgb, scale_by


def test_box_resize_counts_each_source_pixel_toward_one_model_pixel() -> None:
    """5 -> 3: the middle source pixel lies wholly under the middle output pixel; OpenCV's area filter would
    also give some of its neighbour to it, marking two model pixels as hole for one damaged source pixel."""
    hole = np.zeros((5, 5), np.float32)
    hole[:, 1] = 1.0
    assert (box_resize(hole, 3)[0] > 0).tolist() == [True, False, False]
    assert (cv2.resize(hole, (3, 3), interpolation=cv2.INTER_AREA)[0] > 0).tolist() == [True, True, False]


def test_area_resize_averages_where_either_side_shrinks() -> None:
    picture = np.random.default_rng(0).uniform(0, 255, (40, 60, 3)).astype(np.float32)
    for size in ((30, 50), (80, 20)):  # both sides smaller; only the height
        expected = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
        assert np.array_equal(area_resize(picture, size, cv2.INTER_CUBIC), expected)
    larger = (90, 50)
    assert np.array_equal(area_resize(picture, larger), cv2.resize(picture, larger, interpolation=cv2.INTER_LINEAR))
    cubic = cv2.resize(picture, larger, interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(area_resize(picture, larger, cv2.INTER_CUBIC), cubic)


def test_scale_by_rounds_the_size_and_keeps_the_factor() -> None:
    picture = np.random.default_rng(1).integers(0, 256, (101, 77, 3), dtype=np.uint8)
    assert scale_by(picture, 0.5).shape == (50, 38, 3)  # round(50.5), round(38.5) as OpenCV rounds
    assert scale_by(picture, 2.0).shape == (202, 154, 3)
    assert scale_by(picture, 0.5).flags["C_CONTIGUOUS"]


def test_box_resize_rgb_is_box_resize_of_each_channel_to_the_bit() -> None:
    photo = np.random.default_rng(2).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    window = photo[:, 10:107]  # a strided view, as `prepare` hands it the model's window
    expected = np.stack([box_resize(window[..., c], 16) for c in range(3)])
    resized = box_resize_rgb(window, 16)
    assert resized.dtype == np.float32 and resized.shape == (3, 16, 16)
    assert np.array_equal(resized, expected)
