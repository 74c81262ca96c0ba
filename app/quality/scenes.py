"""Held-out faces placed in larger photos, with holes on and off the face, where the true framing is known.

Each scene is a bundled scikit-image photo (public domain or CC0, shipped with the package) at 640x480
with one held-out 200x200 UTKFace crop pasted at 60-200 px and rolled up to 12 degrees. The crop's
similarity into the scene is known, so holes are placed on the face's parts exactly, and the
restored face can be cut back out for the identity distance.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image

SIZE = (640, 480)
BACKGROUNDS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
# hole families on the face, as rectangles in the 200x200 crop's pixels (eyes and nose base at (59, 61),
# (137, 61), (98, 118) in the training framing)
FACE_BOXES = {"eyes": ((35, 40), (165, 84)), "nose-mouth": ((62, 92), (138, 168)), "half": ((20, 15), (100, 195))}
FAMILIES = ("eyes", "nose-mouth", "half", "strokes", "off-face")


@dataclass(frozen=True)
class Scene:
    """A photo, its hole, and where the face is: `to_scene` maps the 200-pixel crop into the photo."""

    name: str
    family: str
    image: np.ndarray  # (480, 640, 3) uint8, the truth
    hole: np.ndarray  # (480, 640) bool
    to_scene: np.ndarray  # 2x3
    side: float  # the face's crop square side in photo pixels

    def is_face(self, x: float, y: float, w: float, h: float) -> bool:
        """Whether the box x, y, w, h is this scene's face: its centre within a third of the face's side of the
        face's centre (how the evaluations and tests count a face found)."""
        centre = self.to_scene[:, :2] @ np.array([100.0, 100.0]) + self.to_scene[:, 2]
        return bool(np.hypot(x + w / 2 - centre[0], y + h / 2 - centre[1]) < self.side / 3)


def held_out_faces(zip_path: Path, names: list[str]) -> list[tuple[str, np.ndarray]]:
    with zipfile.ZipFile(zip_path) as archive:
        return [(name, np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB"))) for name in names]


def _background(index: int) -> np.ndarray:
    picture = np.asarray(getattr(skimage.data, BACKGROUNDS[index % len(BACKGROUNDS)])())
    if picture.ndim == 2:
        picture = np.stack([picture] * 3, axis=-1)
    return cv2.resize(np.ascontiguousarray(picture[..., :3]), SIZE, interpolation=cv2.INTER_AREA)


def _polygon(hole: np.ndarray, points: np.ndarray) -> None:
    cv2.fillPoly(hole.view(np.uint8), [np.rint(points).astype(np.int32)], 1)


def _to(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def _face_hole(family: str, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hole = np.zeros(SIZE[::-1], dtype=bool)
    if family in FACE_BOXES:
        (x0, y0), (x1, y1) = FACE_BOXES[family]
        _polygon(hole, _to(matrix, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)))
    elif family == "strokes":
        scale = math.hypot(matrix[0, 0], matrix[1, 0])
        for _ in range(4):
            start, end = rng.uniform(30, 170, 2), rng.uniform(30, 170, 2)
            a, b = _to(matrix, np.array([start, end]))
            cv2.line(
                hole.view(np.uint8),
                tuple(np.rint(a).astype(int)),
                tuple(np.rint(b).astype(int)),
                1,
                max(2, round(10 * scale)),
            )
    return hole


def _off_face_hole(matrix: np.ndarray, side: float, rng: np.random.Generator) -> np.ndarray:
    """A block half the face's size that keeps clear of the face's square (grown by a fifth)."""
    corners = _to(matrix, np.array([[-20, -20], [220, -20], [220, 220], [-20, 220]], dtype=np.float64))
    clear = np.zeros(SIZE[::-1], dtype=bool)
    _polygon(clear, corners)
    block = max(16, round(side / 2))
    for _ in range(200):
        x, y = int(rng.integers(0, SIZE[0] - block)), int(rng.integers(0, SIZE[1] - block))
        if not clear[y : y + block, x : x + block].any():
            hole = np.zeros_like(clear)
            hole[y : y + block, x : x + block] = True
            return hole
    raise RuntimeError("no room for an off-face block")


def scene(index: int, family: str, face: tuple[str, np.ndarray], seed: int = 0) -> Scene:
    """Scene `index` of a family: the same face, place and size for every family (paired comparisons)."""
    rng = np.random.default_rng((seed, index))
    side = float(rng.uniform(60, 200))
    angle = math.radians(float(rng.uniform(-12, 12)))
    centre = rng.uniform([side / 2 + 8, side / 2 + 8], [SIZE[0] - side / 2 - 8, SIZE[1] - side / 2 - 8])
    scale = side / 200
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = np.hstack([linear, (centre - linear @ np.array([100.0, 100.0]))[:, None]])
    name, crop = face
    photo = _background(index)
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    warped = cv2.warpAffine(crop, matrix, SIZE, flags=flags | cv2.WARP_FILL_OUTLIERS)
    inside = cv2.warpAffine(np.full((200, 200), 255, np.uint8), matrix, SIZE, flags=cv2.INTER_LINEAR)
    alpha = (inside.astype(np.float32) / 255.0)[..., None]
    image = np.rint(alpha * warped + (1 - alpha) * photo).astype(np.uint8)
    hole_rng = np.random.default_rng((seed, index, FAMILIES.index(family)))
    hole = _off_face_hole(matrix, side, hole_rng) if family == "off-face" else _face_hole(family, matrix, hole_rng)
    return Scene(f"{index:03d}-{name.rsplit('/', 1)[-1]}", family, image, hole, matrix, side)


def face_chip(image: np.ndarray, to_scene: np.ndarray, size: int = 150) -> np.ndarray:
    """The face's crop square cut back out of a photo at `size` pixels (for grids and the identity distance)."""
    inverse = cv2.invertAffineTransform(to_scene) * (size / 200)
    return cv2.warpAffine(image, inverse, (size, size), flags=cv2.INTER_AREA)
