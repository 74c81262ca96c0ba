"""A face in a photo to the training crop's framing and back, by a similarity transform.

The models learned UTKFace's aligned crops. Measured with dlib's 5-point
landmarks on 600 of the 200x200 crops (581 detected): eye centres at (59, 61)
and (137, 61) +-5 px, level within 2 degrees, nose base at (98, 118). A face
anywhere in a photo, at any size and roll, is mapped onto that framing at the
model's resolution; the fill comes back through the inverse map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from app.engine.resize import box_resize
from training.data import to_signed
from training.framing_net import CROP, TEMPLATE


@dataclass(frozen=True)
class Framing:
    """A similarity from photo (x, y) to the 200-pixel training crop's (x, y), as a 2x3 matrix."""

    matrix: np.ndarray

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def side(self) -> float:
        """The crop square's side in photo pixels: the face's size as the model sees it."""
        return CROP / self.scale

    @property
    def angle(self) -> float:
        """The photo face's roll in degrees (0 = level eyes)."""
        return math.degrees(math.atan2(-self.matrix[1, 0], self.matrix[0, 0]))

    def at(self, resolution: int) -> np.ndarray:
        """2x3 photo -> model-pixel map at `resolution` (pixel centres: crop pixel c covers [c, c + 1))."""
        return self.matrix * (resolution / CROP)

    def corners(self) -> np.ndarray:
        """(4, 2): the crop square's corners in the photo, clockwise from top-left."""
        inverse = cv2.invertAffineTransform(self.matrix)
        square = np.array([[0, 0], [CROP, 0], [CROP, CROP], [0, CROP]], dtype=np.float64)
        return square @ inverse[:, :2].T + inverse[:, 2]


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift) taking `source` points to `target` (Umeyama)."""
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    src, tgt = source - mean_s, target - mean_t
    covariance = tgt.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (src**2).sum(axis=1).mean())
    linear = scale * rotation
    return np.hstack([linear, (mean_t - linear @ mean_s)[:, None]])


def from_landmarks(landmarks: np.ndarray, keep: np.ndarray | None = None) -> Framing:
    """The framing that puts the eyes and nose where the training crops have them, fitted to the points in `keep`
    where two or more are kept (two points fix a similarity), else to all three."""
    chosen = np.flatnonzero(keep) if keep is not None and int(np.count_nonzero(keep)) >= 2 else np.arange(3)
    return Framing(similarity(landmarks[chosen], TEMPLATE[chosen]))


@dataclass(frozen=True)
class Aligned:
    """One face at model resolution: what the search sees, and which model pixels lie inside the photo."""

    target: torch.Tensor  # (3, R, R) float [-1, 1], zero in the hole
    hole: torch.Tensor  # (R, R) bool: damaged, or outside the photo
    damaged: int  # model pixels the photo's hole covers (outside-the-photo pixels not counted)


def warp_in(image: np.ndarray, hole: np.ndarray, framing: Framing, resolution: int) -> Aligned:
    """The face's crop square from the photo at (R, R), its hole the model pixels touched by any missing pixel.

    Sampled at the photo's own scale first, then box-filtered to R, so a large face is averaged,
    not aliased, and a known model pixel is made of known photo pixels only (as `prepare` does).
    Pixels beyond the photo's border count as hole: the search fills them, nobody pastes them.
    """
    side = max(resolution, math.ceil(framing.side))
    native = framing.at(side)
    # only the photo under the face's square is read: a 25-megapixel upload costs what its face does
    region = region_of(framing, hole.shape, margin=2) or (slice(0, 1), slice(0, 1))
    rows, cols = region
    native[:, 2] += native[:, :2] @ np.array([cols.start, rows.start], dtype=np.float64)  # region -> model
    flags = cv2.INTER_LINEAR
    pixels = cv2.warpAffine(image[region], native, (side, side), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    missing = cv2.warpAffine(hole[region].astype(np.float32), native, (side, side), flags=flags, borderValue=0.0)
    # the region's edge is the photo's wherever a sample reaches it: within the photo it lies `margin` beyond them
    inside = np.zeros(hole[region].shape, np.float32)
    outside = cv2.warpAffine(inside, native, (side, side), flags=flags, borderValue=1.0)
    small_missing = box_resize(missing, resolution) > 0
    small_outside = box_resize(outside, resolution) > 0
    small_hole = small_missing | small_outside
    planes = [box_resize(pixels[..., c].astype(np.float32), resolution) for c in range(3)]
    target = to_signed(torch.from_numpy(np.stack(planes))).clamp(-1.0, 1.0)
    hole_t = torch.from_numpy(small_hole)
    return Aligned(target.masked_fill(hole_t, 0.0), hole_t, int((small_missing & ~small_outside).sum()))


def feather(resolution: int, width: float = 0.06) -> np.ndarray:
    """(R, R) float32: 1 inside the crop square, falling smoothly to 0 over its outer `width` share."""
    ramp = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution
    edge = np.clip(np.minimum(ramp, 1 - ramp) / width, 0, 1)
    weight = np.minimum.outer(edge, edge)
    return (weight * weight * (3 - 2 * weight)).astype(np.float32)


def warp_out(generated: np.ndarray, framing: Framing, region: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """The model's (R, R, 3) float answer and its feathered coverage, mapped into the photo's `region`.

    Returns (fill, weight), each the region's size: fill float32 (H, W, 3) in 0..255,
    weight float32 (H, W) in [0, 1], 0 outside the face's square.
    """
    resolution = generated.shape[0]
    rows, cols = region
    to_model = framing.at(resolution).copy()
    to_model[:, 2] += to_model[:, :2] @ np.array([cols.start, rows.start], dtype=np.float64)  # region -> model
    size = (cols.stop - cols.start, rows.stop - rows.start)
    inverse = cv2.invertAffineTransform(to_model)
    fill = cv2.warpAffine(generated, inverse, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(feather(resolution), inverse, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    return fill.astype(np.float32), np.clip(weight, 0.0, 1.0)


def region_of(framing: Framing, shape: tuple[int, int], margin: int = 0) -> tuple[slice, slice] | None:
    """The photo's rows and columns the face's square covers, grown by `margin` (clipped to the photo); None when
    it misses the photo."""
    corners = framing.corners()
    height, width = shape
    left, top = max(0, math.floor(corners[:, 0].min()) - margin), max(0, math.floor(corners[:, 1].min()) - margin)
    right = min(width, math.ceil(corners[:, 0].max()) + 1 + margin)
    bottom = min(height, math.ceil(corners[:, 1].max()) + 1 + margin)
    if right <= left or bottom <= top:
        return None
    return slice(top, bottom), slice(left, right)
