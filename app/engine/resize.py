"""The service's image resizes, all in one place; each differs from the others for a reason its docstring gives.

The training set's own preprocessing (centre crop, Lanczos) is `training.data.square_resize`: it stays
in training, which never imports the service.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image


def box_resize(plane: np.ndarray, resolution: int) -> np.ndarray:
    """Area-average one float plane to (R, R): each output pixel sees exactly the source pixels under it.

    PIL's BOX filter counts each source pixel wholly, with equal weight, toward the output pixel whose
    footprint holds its centre; OpenCV's area filter (`area_resize`) splits a pixel that straddles two
    footprints between both. So marking a model pixel as hole wherever any source pixel under it is one
    makes every known model pixel an average of known source pixels only, and a hole pixel costs one
    model pixel, not two (`prepare`, `model_window`, `app.faces.align.warp_in`).
    """
    return np.asarray(Image.fromarray(plane.astype(np.float32)).resize((resolution, resolution), Image.Resampling.BOX))


def box_resize_rgb(image: np.ndarray, resolution: int) -> np.ndarray:
    """(3, R, R) float32: `box_resize` of each channel of an (H, W, 3) uint8 image, to the same bits.

    Pillow splits the channels and widens them to float itself, which saves the strided NumPy copies
    (6.0 -> 4.5 ms for an 886x886 window on the 2-core CPU).
    """
    size = (resolution, resolution)
    channels = Image.fromarray(np.ascontiguousarray(image)).split()
    return np.stack([np.asarray(c.convert("F").resize(size, Image.Resampling.BOX)) for c in channels])


def area_resize(array: np.ndarray, size: tuple[int, int], up: int = cv2.INTER_LINEAR) -> np.ndarray:
    """(H, W[, C]) to `size` = (width, height): area average where either side shrinks, else `up`.

    Bilinear (the default) for working-size round trips whose content is smooth or classical (the
    Poisson correction, the bounded edge fill); cv2.INTER_CUBIC for the generator's answer brought
    up to the photo, where its detail shows.
    """
    return cv2.resize(array, size, interpolation=area_interpolation(array.shape[:2], size, up))


def area_interpolation(shape: tuple[int, ...], size: tuple[int, int], up: int) -> int:
    """`area_resize`'s OpenCV filter for an (H, W) image to `size` = (width, height)."""
    return cv2.INTER_AREA if size[0] < shape[1] or size[1] < shape[0] else up


def scale_by(picture: np.ndarray, scale: float) -> np.ndarray:
    """`picture` resized by the factor `scale` (area average down, cubic up), as a fresh contiguous array.

    By a factor, not to a size: OpenCV then maps pixels by `scale` exactly rather than by the rounded
    size's ratio, so boxes a detector finds map back by the same factor (`app.faces.locate`).
    """
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(picture, None, fx=scale, fy=scale, interpolation=interpolation))
