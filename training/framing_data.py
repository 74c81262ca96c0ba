"""Training examples for the framing network: a face in a photo, damaged, framed a little wrong.

Each example puts a 200x200 training crop into a larger picture (its own border stretched or
mirrored, or a blurred stranger behind it) at 56-200 px, draws a hole of a family the service
meets (blocks, a half face, strokes, blocks with strokes, or none), and frames it with a similarity
off the truth by a few pixels and degrees, as dlib's landmarks are under damage. The crop is
sampled as `app.faces.align.warp_in` samples it (the photo's own scale, then an area resize; pixels
beyond the photo count as hole), and the answer is where the template's points lie in that crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from training.framing_net import CROP, TEMPLATE

PAD = 100  # context around the crop in the composed picture, in crop pixels
HOLE_FAMILIES = ("none", "block", "half", "strokes", "block+strokes")
HOLE_WEIGHTS = (0.1, 0.35, 0.15, 0.25, 0.15)


@dataclass(frozen=True)
class Examples:
    """A batch: crops (B, 3, R, R) in [-1, 1] with holes zeroed, known (B, R, R) bool, points (B, 3, 2)."""

    crops: torch.Tensor
    known: torch.Tensor
    points: torch.Tensor


def similarity_about_centre(shift: np.ndarray, angle: float, scale: float) -> np.ndarray:
    """2x3 crop -> crop map: rotate by `angle` degrees and scale about the crop's centre, then shift."""
    matrix = cv2.getRotationMatrix2D((CROP / 2, CROP / 2), angle, scale)
    matrix[:, 2] += shift
    return matrix


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 map `outer` after `inner`."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def _picture(face: np.ndarray, stranger: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(400, 400, 3): the face in the middle of some context."""
    choice = rng.integers(3)
    if choice == 0:
        return cv2.copyMakeBorder(face, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
    if choice == 1:
        return cv2.copyMakeBorder(face, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT_101)
    side = int(CROP) + 2 * PAD
    picture = cv2.GaussianBlur(cv2.resize(stranger, (side, side), interpolation=cv2.INTER_CUBIC), (0, 0), 4)
    picture[PAD:-PAD, PAD:-PAD] = face
    return picture


def _photometric(picture: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Old photographs: sometimes grey or sepia, brighter or darker, flatter or harsher."""
    pixels = picture.astype(np.float32)
    if rng.random() < 0.15:
        grey = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        tint = np.array([1.0, 1.0, 1.0] if rng.random() < 0.5 else [1.07, 0.95, 0.8], dtype=np.float32)
        pixels = grey[..., None] * tint
    pixels = (pixels - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-25, 25)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _hole(family: str, rng: np.random.Generator) -> np.ndarray:
    """(400, 400) bool in the picture's crop pixels (the crop at PAD..PAD+200)."""
    hole = np.zeros((int(CROP) + 2 * PAD,) * 2, dtype=np.uint8)
    if family in ("block", "block+strokes"):
        w, h = rng.uniform(40, 140), rng.uniform(25, 100)
        cx, cy = rng.uniform(40, 160, 2)
        (x0, y0), (x1, y1) = np.rint(np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy + h / 2]]) + PAD).astype(int)
        cv2.rectangle(hole, (int(x0), int(y0)), (int(x1), int(y1)), 1, thickness=-1)
    if family == "half":
        cut = rng.uniform(85, 115)
        top, bottom = rng.uniform(5, 30), rng.uniform(170, 198)
        left, right = (rng.uniform(10, 30), cut) if rng.random() < 0.5 else (cut, rng.uniform(170, 190))
        cv2.rectangle(hole, (int(left + PAD), int(top + PAD)), (int(right + PAD), int(bottom + PAD)), 1, -1)
    if family in ("strokes", "block+strokes"):
        for _ in range(rng.integers(2, 7)):
            start, end = rng.uniform(30, 170, 2) + PAD, rng.uniform(30, 170, 2) + PAD
            thickness = int(rng.uniform(6, 20))
            cv2.line(hole, tuple(int(v) for v in start), tuple(int(v) for v in end), 1, thickness)
    return hole.astype(bool)


def _perturbation(rng: np.random.Generator) -> np.ndarray:
    """How far off a landmark framing lands: half the examples far (a hole hid landmarks), half near."""
    spread = 1.0 if rng.random() < 0.5 else 0.3
    shift = np.clip(rng.normal(0, 9 * spread, 2), -30, 30)
    angle = float(np.clip(rng.normal(0, 7 * spread), -20, 20))
    scale = math.exp(float(np.clip(rng.normal(0, 0.09 * spread), -0.25, 0.25)))
    return similarity_about_centre(shift, angle, scale)


def sample_crop(
    photo: np.ndarray, hole: np.ndarray, framing: np.ndarray, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """The crop a photo -> crop framing gives at `resolution`: (R, R, 3) float32 0..255 and (R, R) bool known.

    As the service frames a face: sampled at the face's own scale, then area-resized; a model pixel is known
    only where every photo pixel under it is known and inside the photo.
    """
    scale = math.hypot(framing[0, 0], framing[1, 0])
    side = max(resolution, math.ceil(CROP / scale))
    native = framing * (side / CROP)
    size = (side, side)
    pixels = cv2.warpAffine(photo, native, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    missing = cv2.warpAffine(hole.astype(np.float32), native, size, flags=cv2.INTER_LINEAR, borderValue=0.0)
    outside = cv2.warpAffine(np.zeros(hole.shape, np.float32), native, size, flags=cv2.INTER_LINEAR, borderValue=1.0)
    small = (resolution, resolution)
    crop = cv2.resize(pixels.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    unknown = cv2.resize(np.maximum(missing, outside), small, interpolation=cv2.INTER_AREA) > 0
    return crop, ~unknown


def make_examples(
    faces: np.ndarray, count: int, resolution: int, rng: np.random.Generator, family: str | None = None
) -> Examples:
    """`count` examples from `faces` (N, 200, 200, 3) uint8, with holes of `family` (default: any, weighted)."""
    crops, knowns, points = [], [], []
    for _ in range(count):
        face, stranger = faces[rng.integers(len(faces))], faces[rng.integers(len(faces))]
        picture = _photometric(_picture(face, stranger, rng), rng)
        hole = _hole(family or HOLE_FAMILIES[rng.choice(len(HOLE_FAMILIES), p=HOLE_WEIGHTS)], rng)
        side = rng.uniform(56, 200)  # the face's crop square in photo pixels
        zoom = side / CROP
        photo = cv2.resize(picture, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        photo_hole = cv2.resize(hole.astype(np.uint8), photo.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
        truth = np.array([[1 / zoom, 0, -PAD], [0, 1 / zoom, -PAD]])  # photo -> crop
        wrong = _perturbation(rng)
        crop, known = sample_crop(photo, photo_hole, compose(wrong, truth), resolution)
        crops.append(crop)
        knowns.append(known)
        points.append(TEMPLATE @ wrong[:, :2].T + wrong[:, 2])
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).div(127.5).sub(1.0)
    known_t = torch.from_numpy(np.stack(knowns))
    return Examples(pixels * known_t.unsqueeze(1), known_t, torch.from_numpy(np.stack(points)).float())
