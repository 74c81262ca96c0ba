"""Which faces a hole touches, which model suits each, which landmarks survived, and which boxes are not faces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from app.faces.align import Framing, region_of
from app.faces.locate import Face

# a landmark is trusted where no hole pixel lies within this share of the eye distance of it
SURVIVING_REACH = 0.3


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


def surviving(face: Face, hole: np.ndarray) -> np.ndarray:
    """(3,) bool: which landmarks (left eye, right eye, nose base) have no hole pixel within 0.3 eye distances.

    dlib's points inside a hole are guesses from the rest of the face; a framing fitted to the points the
    damage left alone lands nearer the face's own (`app.faces.align.from_landmarks`).
    """
    left, right, _ = face.landmarks
    reach = SURVIVING_REACH * float(np.hypot(*(right - left)))
    height, width = hole.shape
    alive = []
    for x, y in face.landmarks:
        rows = slice(max(0, int(y - reach)), max(0, min(height, int(y + reach) + 1)))
        cols = slice(max(0, int(x - reach)), max(0, min(width, int(x + reach) + 1)))
        alive.append(not bool(hole[rows, cols].any()))
    return np.array(alive)


def known_error(generated: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> float:
    """Mean absolute difference on the known pixels, in [-1, 1] units: how well a guess explains what survived."""
    known = ~hole
    if not bool(known.any()):
        return math.inf
    difference = (generated.float() - target.float()).abs().mean(dim=0)
    return float(difference[known].mean())
