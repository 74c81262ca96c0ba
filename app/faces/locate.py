"""Where the faces are: dlib's HOG detector and its 5-point landmarks, run on the damaged photo and its pre-fills.

dlib's HOG detector (the `dlib-bin` wheel) ships its weights inside the library and
found all six faces of a group photo with no false box, where scikit-image's LBP
cascade added five false ones; the 5-point landmark model ships in the
`face-recognition-models` package (public domain; its 68-point model's training
data forbids commercial use, so it is not used). Nothing is downloaded at run time.

The face that needs restoring is the damaged one, and damage hides what the
detector looks for: HOG runs on the upload as sent and on a Telea pre-fill of
its hole. Where hole pixels lie outside every face it finds, HOG looks closer at the
hole's pre-filled neighbourhood (zoomed, below its usual threshold); where it still
finds none, dlib's CNN face detector (MMOD, shipped in the same package), which finds
a face with its eyes blocked where HOG does not, searches that neighbourhood; it costs
0.85 s of one core (dlib runs it single-threaded, however many there are), so it runs only
there and only then. One box per face. A caller's box is confirmed by the same closer look
before a face is pasted into it. HOG's independent looks run side by side (dlib releases the
interpreter lock), and the Telea pre-fill is returned with the faces (`Located`): it is the
classical fill of the hole's pixels outside them.
"""

from __future__ import annotations

import importlib.util
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dlib
import numpy as np

from app.engine.inpaint import telea
from app.engine.resize import scale_by

Source = Literal["detected", "given"]
# the 5-point model's parts: two corners of each eye, then the base of the nose
_EYE_A, _EYE_B, _NOSE = (0, 1), (2, 3), 4
# the detector's working side: a larger photo is searched at this size (its faces are large enough there)
MAX_DETECT_SIDE = 1024
# the CNN detector's working side around a hole: its cost grows with the pixels it scans (0.85 s at 400x400, one core)
MAX_CNN_SIDE = 400
# ...and its least: its convolutions need a picture this large, and it finds no face smaller than about 40 px
MIN_CNN_SIDE = 48
# threads beside the caller's for a request's independent HOG runs (two full looks, two closer looks)
_HELPERS = 2
# two boxes of one face overlap at least this much (intersection over union)
SAME_FACE_IOU = 0.3
# a caller's box is looked at with this much of its surroundings, at this side (dlib's detectors need the
# face's outline, and find faces of about 80 px best)
CONFIRM_MARGIN, CONFIRM_SIDE = 0.3, 160
# ...and confirmed by HOG at this score (its default threshold is 0) or by any CNN detection: measured on
# held-out damaged faces (eyes, nose-and-mouth, half blocks; 120 boxes) against boxes on the backgrounds
# (40), 97 % of the faces and none of the backgrounds pass
CONFIRM_HOG_SCORE = -0.5
# HOG's closer look around a hole no found face explains: the neighbourhood's side there, zoomed at most this much
CLOSER_SIDE, MAX_CLOSER_ZOOM = 400, 4.0
# ...its two looks: the hole's neighbourhood grown this many times the hole's size each way, at this HOG score.
# The nearer look suits a face the hole covers much of; a close-cropped face (a baby's, chin and hair cut off)
# with its nose and mouth blocked needs the wider one. Measured on held-out scenes (faces 100-199, which the
# evaluation's table does not use; faces of 80 px or more): see docs/faces/README.md
CLOSER_LOOKS = ((1.5, CONFIRM_HOG_SCORE), (2.0, -0.6))


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in photo pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def iou(self, other: Box) -> float:
        left, top = max(self.x, other.x), max(self.y, other.y)
        right, bottom = min(self.x + self.w, other.x + other.w), min(self.y + self.h, other.y + other.h)
        inter = max(0, right - left) * max(0, bottom - top)
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union else 0.0

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Face:
    """A face's box and its landmarks: left eye centre, right eye centre, nose base, as (3, 2) photo (x, y)."""

    box: Box
    landmarks: np.ndarray
    source: Source
    score: float  # the detector's confidence; 0 for a box the caller gave
    confirmed: bool = True  # a caller's box: whether a detector, looking closer, sees a face in it


@dataclass(frozen=True)
class Located:
    """The faces located in a photo, and the Telea pre-fill of its hole they were looked for on (the photo
    itself where nothing is missing): the classical fill the hole's pixels outside the faces take, made once."""

    faces: list[Face]
    prefilled: np.ndarray


def _shrunk(picture: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """`picture` brought down to at most `side` pixels a side (area average), contiguous for dlib, and its scale."""
    scale = min(1.0, side / max(picture.shape[:2]))
    return (scale_by(picture, scale) if scale < 1.0 else np.ascontiguousarray(picture)), scale


def _box(rect: dlib.rectangle, scale: float, left: int = 0, top: int = 0) -> Box:
    """A detector's rectangle on a picture shrunk by `scale` whose corner is at (left, top), in photo pixels."""
    return Box(
        left + round(rect.left() / scale),
        top + round(rect.top() / scale),
        round(rect.width() / scale),
        round(rect.height() / scale),
    )


def _covered(hole: np.ndarray, box: Box) -> np.ndarray:
    """The view of `hole` under `box` (clipped to the photo)."""
    return hole[max(0, box.y) : max(0, box.y + box.h), max(0, box.x) : max(0, box.x + box.w)]


def _neighbourhood(hole: np.ndarray, grow: float) -> tuple[int, int, int, int]:
    """Top, left, bottom, right of the hole's bounding box grown by `grow` times its larger side (at least
    MIN_CNN_SIDE) each way, clipped to the photo."""
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    reach = max(round(grow * max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)), MIN_CNN_SIDE)
    top, left = max(0, int(rows[0]) - reach), max(0, int(cols[0]) - reach)
    return top, left, min(hole.shape[0], int(rows[-1]) + 1 + reach), min(hole.shape[1], int(cols[-1]) + 1 + reach)


def model_file(name: str) -> Path:
    """A model file of the face-recognition-models package (the 5-point landmarks, MMOD, the face descriptor)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("the face-recognition-models package is missing: pip install face-recognition-models")
    # read by path: the package's __init__ imports pkg_resources, which current setuptools no longer has
    return Path(spec.origin).parent / "models" / name


class FaceLocator:
    """dlib's detectors and landmark model, each thread its own (dlib's objects are not shared across threads)."""

    def __init__(self, upsample: int = 1) -> None:
        self.upsample = upsample
        self._path = str(model_file("shape_predictor_5_face_landmarks.dat"))
        self._cnn_path = str(model_file("mmod_human_face_detector.dat"))
        self._local = threading.local()
        # dlib builds its frontal detector from text in 260 ms; a thread's own copy is unpickled from this in 1 ms
        self._hog_bytes = pickle.dumps(dlib.get_frontal_face_detector())
        self._predictor()  # load once now: a missing file fails at start-up, not on a request
        # dlib's detectors release the interpreter lock: a request's independent HOG runs (the upload beside
        # its pre-fill, one closer look beside the other) go one to a helper thread, one to the caller's, and
        # finish in about half the time on two cores (572 -> 290 ms for a 1280x886 photo's two full looks)
        self._helpers = ThreadPoolExecutor(_HELPERS, thread_name_prefix="face-hog")

    def _detector(self) -> dlib.fhog_object_detector:
        if not hasattr(self._local, "detector"):
            self._local.detector = pickle.loads(self._hog_bytes)  # made by this process: no foreign bytes
        detector: dlib.fhog_object_detector = self._local.detector
        return detector

    def _predictor(self) -> dlib.shape_predictor:
        if not hasattr(self._local, "predictor"):
            self._local.predictor = dlib.shape_predictor(self._path)
        predictor: dlib.shape_predictor = self._local.predictor
        return predictor

    def _cnn(self) -> dlib.cnn_face_detection_model_v1:
        if not hasattr(self._local, "cnn"):
            self._local.cnn = dlib.cnn_face_detection_model_v1(self._cnn_path)
        return self._local.cnn

    def _closer(self, prefilled: np.ndarray, hole: np.ndarray) -> list[tuple[Box, float]]:
        """HOG looking closer at the pre-filled photo around the hole, once per CLOSER_LOOKS: the neighbourhood
        brought to CLOSER_SIDE, upsampled once, below HOG's usual threshold; boxes the hole touches. The looks
        run side by side (all but the last in helper threads).

        A nose-and-mouth block takes a face below HOG's usual threshold; looked at closer, most are found,
        with no box on the backgrounds of the off-face holes, for about 0.05 s a look.

        Looks whose neighbourhoods are the same picture (a small photo: each is the whole of it) run once, at the
        lowest of their thresholds: HOG's boxes above a higher threshold are among those, so nothing changes."""
        looks: dict[tuple[int, int, int, int], float] = {}
        for grow, threshold in CLOSER_LOOKS:
            window = _neighbourhood(hole, grow)
            looks[window] = min(threshold, looks.get(window, threshold))

        def look(window: tuple[int, int, int, int], threshold: float) -> list[tuple[Box, float]]:
            top, left, bottom, right = window
            scale = min(CLOSER_SIDE / max(bottom - top, right - left), MAX_CLOSER_ZOOM)
            picture = scale_by(prefilled[top:bottom, left:right], scale)
            rects, scores, _ = self._detector().run(picture, 1, threshold)
            return [(_box(rect, scale, left, top), float(score)) for rect, score in zip(rects, scores, strict=True)]

        *aside, last = looks.items()
        beside = [self._helpers.submit(look, *item) for item in aside]
        here = look(*last)
        found = [item for future in beside for item in future.result()] + here
        return [(box, score) for box, score in found if _covered(hole, box).any()]

    def _near_hole(self, prefilled: np.ndarray, hole: np.ndarray) -> list[tuple[Box, float]]:
        """The CNN detector on the pre-filled photo around the hole (its box grown by its size, at least
        MIN_CNN_SIDE, each way)."""
        top, left, bottom, right = _neighbourhood(hole, 1.0)
        if min(bottom - top, right - left) < MIN_CNN_SIDE:  # smaller than the network's window: no face fits
            return []
        small, scale = _shrunk(prefilled[top:bottom, left:right], MAX_CNN_SIDE)
        return [(_box(found.rect, scale, left, top), float(found.confidence)) for found in self._cnn()(small, 0)]

    def _hog(self, picture: np.ndarray) -> list[tuple[Box, float]]:
        """HOG over the whole of `picture` (at most MAX_DETECT_SIDE a side), at its usual threshold."""
        small, scale = _shrunk(picture, MAX_DETECT_SIDE)
        rects, scores, _ = self._detector().run(small, self.upsample, 0.0)
        return [(_box(rect, scale), float(score)) for rect, score in zip(rects, scores, strict=True)]

    def detect(self, image: np.ndarray, hole: np.ndarray) -> list[Face]:
        """Every face found on the damaged photo or its Telea pre-fill, one box per face, best first."""
        return self.locate(image, hole).faces

    def locate(self, image: np.ndarray, hole: np.ndarray, boxes: list[Box] | None = None) -> Located:
        """`detect`'s faces with the pre-fill they were looked for on; where the caller gave `boxes`, those boxes
        instead, with landmarks found inside each on the pre-fill, each confirmed or not."""
        if boxes is not None:
            prefilled = telea(image, hole) if hole.any() else image
            faces = [
                Face(box, self.landmarks(prefilled, box), "given", 0.0, self.confirms(prefilled, box)) for box in boxes
            ]
            return Located(faces, prefilled)
        if not hole.any():
            return Located(self._kept(image, self._hog(image)), image)
        on_upload = self._helpers.submit(self._hog, image)  # runs while the hole is pre-filled
        prefilled = telea(image, hole)
        on_prefilled = self._hog(prefilled)
        found = on_upload.result() + on_prefilled
        # damage no found face explains: a face HOG missed may lie under it; the closer look costs little, the
        # CNN detector about a second, so it looks only where the closer look found nothing either
        for look in (self._closer, self._near_hole):
            uncovered = hole.copy()
            for box, _ in found:
                _covered(uncovered, box)[...] = False
            if not uncovered.any():
                break
            # a face HOG missed lies apart from the faces found: a box reaching into one is the scene beside it
            found += [
                (box, score) for box, score in look(prefilled, uncovered) if all(box.iou(o) == 0 for o, _ in found)
            ]
        return Located(self._kept(prefilled, found), prefilled)

    def _kept(self, prefilled: np.ndarray, found: list[tuple[Box, float]]) -> list[Face]:
        """One box per face (the best of those overlapping), best first, with its landmarks on `prefilled`."""
        kept: list[tuple[Box, float]] = []
        for box, score in sorted(found, key=lambda item: -item[1]):
            if all(box.iou(other) < SAME_FACE_IOU for other, _ in kept):
                kept.append((box, score))
        return [Face(box, self.landmarks(prefilled, box), "detected", score) for box, score in kept]

    def confirms(self, prefilled: np.ndarray, box: Box) -> bool:
        """Whether a face is in `box`: HOG below its usual threshold, or the CNN detector, on the box and its
        surroundings brought to CONFIRM_SIDE. A caller gives a box where the locator found none, so the
        check looks closer than the locator does, yet still refuses a wall or a hand."""
        grow = round(CONFIRM_MARGIN * max(box.w, box.h))
        height, width = prefilled.shape[:2]
        top, left = max(0, box.y - grow), max(0, box.x - grow)
        bottom, right = min(height, box.y + box.h + grow), min(width, box.x + box.w + grow)
        if bottom - top < 2 or right - left < 2:
            return False
        picture = scale_by(prefilled[top:bottom, left:right], CONFIRM_SIDE / max(box.w, box.h))
        _, scores, _ = self._detector().run(picture, 0, CONFIRM_HOG_SCORE)
        if len(scores):
            return True
        return min(picture.shape[:2]) >= MIN_CNN_SIDE and len(self._cnn()(picture, 0)) > 0

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """(3, 2): the left and right eye centres (as seen in the photo) and the nose base."""
        predictor = self._predictor()
        rect = dlib.rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1)
        shape = predictor(np.ascontiguousarray(image), rect)
        points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        eyes = sorted((points[list(_EYE_A)].mean(axis=0), points[list(_EYE_B)].mean(axis=0)), key=lambda p: p[0])
        return np.stack([eyes[0], eyes[1], points[_NOSE]])
