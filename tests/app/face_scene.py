"""A photo with one real face in it: a held-out 200x200 UTKFace crop pasted into scikit-image's `coffee`.

The face is one the shipped face models never trained on (`faces-128:2`'s card lists its held-out
files); the canvas is a bundled public-domain photo with no face of its own.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
import skimage.data
from PIL import Image

from tests.conftest import SHARED_DATA, SHIPPED_STORE
from training.checkpoint import read_card

FACES_200_ZIP = SHARED_DATA / "utkface_crop_part1_200.zip"
# a held-out face HOG finds with a clear margin (score about 1.7) when pasted at 120 px into coffee
HELD_OUT_FACE = "crop_part1/10_0_1_20170110223455893.jpg.chip.jpg"


@dataclass(frozen=True)
class Scene:
    photo: np.ndarray  # (H, W, 3) uint8
    face: tuple[int, int, int, int]  # where the pasted face lies: x, y, width, height in photo pixels


def held_out_face(side: int) -> np.ndarray:
    """The held-out face, resized to side x side."""
    if not FACES_200_ZIP.exists():
        pytest.fail(f"{FACES_200_ZIP} is missing: the tests read the shared data set beside the repository")
    held_out = read_card(SHIPPED_STORE / "faces-128" / "2")["dataset"]["held_out"]
    assert HELD_OUT_FACE in held_out, "the test face must be one no shipped model trained on"
    with zipfile.ZipFile(FACES_200_ZIP) as archive:
        picture = Image.open(io.BytesIO(archive.read(HELD_OUT_FACE))).convert("RGB")
    return np.asarray(picture.resize((side, side), Image.Resampling.LANCZOS))


def face_scene(x: int = 300, y: int = 100, side: int = 120) -> Scene:
    """`coffee` (600x400) with the held-out face pasted at (x, y), side x side."""
    photo = skimage.data.coffee().copy()
    photo[y : y + side, x : x + side] = held_out_face(side)
    return Scene(photo, (x, y, side, side))


def no_face() -> np.ndarray:
    return np.ascontiguousarray(skimage.data.coffee())


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
