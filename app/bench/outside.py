"""The uploads `bench --outside` and its profile send: a real photo with a block missing over its face.

skimage's astronaut (a 512x512 photo shipped in its wheel) brought to each size with a little seeded grain,
so PNG decoding and encoding see a photo's entropy rather than an upscaled blur.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image
from skimage import data

SIZES = ((64, 64), (512, 512), (1280, 886))  # (width, height)
# the missing block, (top, left, bottom, right) as fractions of the photo: over the astronaut's face
HOLE_BOX = (0.2, 0.42, 0.45, 0.58)


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8: the astronaut at `width` x `height` with +-3 levels of grain."""
    astronaut = np.asarray(data.astronaut())
    shrink = width < astronaut.shape[1] and height < astronaut.shape[0]
    scaled = cv2.resize(astronaut, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    grain = np.random.default_rng(seed).integers(-3, 4, scaled.shape)
    return np.clip(scaled.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def hole(width: int, height: int) -> np.ndarray:
    """(H, W) bool, True = missing: HOLE_BOX."""
    top, left, bottom, right = HOLE_BOX
    missing = np.zeros((height, width), dtype=bool)
    missing[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return missing


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(width: int, height: int) -> tuple[bytes, bytes]:
    """(image PNG, mask PNG: white = fill) as a client sends them."""
    return png(photo(width, height)), png(hole(width, height).astype(np.uint8) * 255)
