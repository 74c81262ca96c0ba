"""How much of a hole pixel's answer comes from the generator, by its depth in the hole.

A scratch a few pixels wide on a large photo is far narrower than one pixel
of the model: the generator's fill, upscaled from its 64x64, can only be a
blur there, while a classical fill at the photo's own size borrows real detail
from the pixels beside it. Deep inside a large hole it is the other way round:
only the generator knows what a face looks like. The weight is a smoothstep
of the distance to the nearest known pixel, measured in model pixels, so the
same rule holds for a 64x64 upload and a 4000x4000 scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from app.engine.errors import ParamsError
from app.engine.inpaint import INPAINTS


@dataclass(frozen=True)
class EdgeFill:
    """Classical fill near the hole's edge, the generator's deeper than `far` model pixels."""

    method: str = "telea"
    near: float = 0.0  # model pixels from the edge that are all classical
    far: float = 2.0  # model pixels from the edge from which on it is all generator
    full_at: float = 2.0  # photo pixels per model pixel from which it is at full strength (none at 1)

    def __post_init__(self) -> None:
        if self.method not in INPAINTS:
            raise ParamsError(f"edge fill must be one of {', '.join(INPAINTS)}, got {self.method!r}")
        if not 0 <= self.near < self.far:
            raise ParamsError(f"edge fill needs 0 <= near < far, got near={self.near} far={self.far}")
        if not self.full_at > 1:
            raise ParamsError(f"edge fill needs full_at > 1 photo pixel per model pixel, got {self.full_at}")


def model_pixel(shape: tuple[int, int], resolution: int) -> float:
    """The side of one model pixel in photo pixels (geometric mean of the two axes' stretch)."""
    height, width = shape
    return math.sqrt(height * width) / resolution


def generator_weight(hole: np.ndarray, pixel: float, edge: EdgeFill) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 0 outside the hole and at its edge, 1 deeper than `edge.far` model pixels.

    `pixel` is one model pixel's side in photo pixels (`model_pixel`). A photo no finer than
    the model (`pixel` <= 1) gets the generator's fill everywhere: at 64x64 the edge fill
    cost 0.03 to 1.06 dB of hole PSNR (docs/evaluation/edge-fill-64); it comes in linearly and
    is at full strength from `edge.full_at` photo pixels per model pixel on.
    """
    # photo pixels to the nearest known one; float32 and in place: a 25-megapixel upload makes these arrays large
    weight = np.asarray(cv2.distanceTransform(hole.view(np.uint8), cv2.DIST_L2, 5), dtype=np.float32)
    weight -= edge.near * pixel
    weight *= 1.0 / ((edge.far - edge.near) * pixel)
    np.clip(weight, 0.0, 1.0, out=weight)
    weight *= weight * (3.0 - 2.0 * weight)  # smoothstep; 0 outside the hole, where the distance is 0
    strength = min(1.0, max(0.0, (pixel - 1.0) / (edge.full_at - 1.0)))
    if strength < 1.0:  # no finer detail to borrow than the model's own: all generator at its resolution
        weight = np.where(hole, 1.0 - strength * (1.0 - weight), 0.0).astype(np.float32)
    return weight


# the service's edge fill, tuned on held-out 200x200 faces: near and far with faces:2 (3.1 photo pixels per
# model pixel, docs/evaluation/edge-fill-200), full_at with faces-128 (1.56, docs/evaluation/edge-fill-200-faces-128)
EDGE_FILL = EdgeFill("telea", near=0.5, far=2.0, full_at=1.5)
EDGE_NAMES = (*INPAINTS, "none")


def edge_fill(name: str) -> EdgeFill | None:
    """The service's edge fill with the classical method `name`; None for `none` (the generator's fill only)."""
    if name == "none":
        return None
    if name not in INPAINTS:
        raise ParamsError(f"edge must be one of {', '.join(EDGE_NAMES)}, got {name!r}")
    return replace(EDGE_FILL, method=name)
