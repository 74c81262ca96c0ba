"""Which faces a hole touches, which model suits each, which framings to try, and which boxes are not faces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from app.faces.align import Framing, region_of
from app.faces.locate import Face

# Framings tried around the landmarks' one, as (scale, dx, dy) in crop pixels of 200, scored by the encoder's guess.
# dlib's points wander by about 3.5 crop pixels on an undamaged face and 6 with the nose and mouth hidden: one
# fine stage suffices. With an eye hidden the whole cascade is pulled off (the astronaut's eyes block: the face
# taken 18 % too large and 20 px too high), so a coarse stage searches wider first.
Move = tuple[float, float, float]
FINE: tuple[Move, ...] = tuple((1.0, dx, dy) for dx in (-6.0, 0.0, 6.0) for dy in (-6.0, 0.0, 6.0))
COARSE: tuple[Move, ...] = tuple(
    (s, dx, dy) for s in (0.87, 1.0, 1.15) for dx in (-12.0, 0.0, 12.0) for dy in (-24.0, -12.0, 0.0, 12.0)
)


@dataclass(frozen=True)
class Sized:
    """A model a face may be completed with: its key, its resolution, and whether an encoder can score framings."""

    key: str
    resolution: int
    has_encoder: bool


def pick_model(side: float, models: list[Sized]) -> Sized:
    """The model whose resolution is nearest the face's crop side, on a log scale (64 below ~91 px, 128 above)."""
    return min(models, key=lambda model: (abs(math.log(side / model.resolution)), -model.resolution))


def landmarks_plausible(face: Face) -> bool:
    """The landmark model's points make a face inside its box: eyes apart by a sensible share of the box, not
    rolled past 40 degrees, the nose below the eye line by about the eyes' distance.

    dlib's predictor always answers five points, even on a lamp; on a real face these hold with room to spare.
    """
    left, right, nose = face.landmarks
    eyes = right - left
    distance = float(np.hypot(*eyes))
    size = max(face.box.w, face.box.h)
    if not 0.2 * size <= distance <= 0.75 * size:
        return False
    if abs(math.degrees(math.atan2(eyes[1], eyes[0]))) > 40:
        return False
    normal = np.array([-eyes[1], eyes[0]]) / distance  # points down the face when the eyes run left to right
    drop = float(normal @ (nose - (left + right) / 2))
    return 0.3 * distance <= drop <= 1.3 * distance


def square_mask(framing: Framing, region: tuple[slice, slice]) -> np.ndarray:
    """(H, W) bool over `region`: the photo pixels inside the face's crop square."""
    rows, cols = region
    corners = framing.corners() - np.array([cols.start, rows.start])
    mask = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.rint(corners * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def touched(framing: Framing, hole: np.ndarray, least: int) -> bool:
    """Whether at least `least` hole pixels lie inside the face's crop square."""
    region = region_of(framing, hole.shape)
    if region is None:
        return False
    return int((hole[region] & square_mask(framing, region)).sum()) >= least


def stages(face: Face, hole: np.ndarray) -> list[tuple[Move, ...]]:
    """The framing search's stages for this face: coarse then fine where the hole hides an eye, else fine only."""
    left, right, _ = face.landmarks
    reach = 0.25 * float(np.hypot(*(right - left)))  # about an eye's half-width
    height, width = hole.shape
    for x, y in (left, right):
        rows = slice(max(0, int(y - reach)), min(height, int(y + reach) + 1))
        cols = slice(max(0, int(x - reach)), min(width, int(x + reach) + 1))
        if hole[rows, cols].any():
            return [COARSE, FINE]
    return [FINE]


def around(framing: Framing, moves: tuple[Move, ...]) -> list[Framing]:
    return [framing.moved(*move) for move in moves]


def known_error(generated: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> float:
    """Mean absolute difference on the known pixels, in [-1, 1] units: how well a guess explains what survived."""
    known = ~hole
    if not bool(known.any()):
        return math.inf
    difference = (generated.float() - target.float()).abs().mean(dim=0)
    return float(difference[known].mean())
