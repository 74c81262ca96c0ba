"""Finding the damaged face: HOG's closer look around a hole no found face explains."""

from __future__ import annotations

import dlib
import numpy as np
import pytest
import torch
from PIL import Image

from app.engine.depth import EDGE_FILL
from app.engine.inpaint import telea
from app.engine.resize import scale_by
from app.faces.align import from_landmarks
from app.faces.locate import CLOSER_LOOKS, CLOSER_SIDE, MAX_CLOSER_ZOOM, FaceLocator
from app.faces.paste import FaceFill, paste_faces
from app.quality.faces_eval import held_out_names
from app.quality.scenes import FAMILIES, held_out_faces, scene
from tests.conftest import SHIPPED_STORE
from tests.faces.conftest import FACES_200_ZIP, held_out  # noqa: F401


@pytest.mark.parametrize("index", [41, 47, 55, 57])
def test_a_face_hog_misses_under_a_nose_and_mouth_block_is_found(held_out_60, locator: FaceLocator, index) -> None:
    """Held-out scenes (faces of 95-150 px) where HOG at its threshold finds no face on the upload or its Telea
    pre-fill (and the CNN detector around the hole found none either): the closer look finds the face, alone."""
    item = scene(index, "nose-mouth", held_out_60[index])
    damaged = item.image.copy()
    damaged[item.hole] = 0
    hog = dlib.get_frontal_face_detector()
    for variant in (damaged, telea(damaged, item.hole)):
        rects, _, _ = hog.run(variant, locator.upsample, 0.0)
        assert not any(item.is_face(r.left(), r.top(), r.width(), r.height()) for r in rects)
    assert [item.is_face(*face.box.as_list()) for face in locator.detect(damaged, item.hole)] == [True]


@pytest.mark.parametrize("index", [71, 95])
def test_a_close_cropped_face_under_a_nose_and_mouth_block_is_found_by_the_wider_look(
    locator: FaceLocator, index: int
) -> None:
    """Held-out babies' faces (164 and 183 px), cropped close (chin and hair cut off): with the nose and mouth
    blocked, neither HOG, its near look nor the CNN detector found them; the wider look does."""
    [face] = held_out_faces(FACES_200_ZIP, [held_out_names(SHIPPED_STORE)[index]])
    item = scene(index, "nose-mouth", face)
    damaged = item.image.copy()
    damaged[item.hole] = 0
    assert [item.is_face(*found.box.as_list()) for found in locator.detect(damaged, item.hole)] == [True]


class _Counting:
    """dlib's HOG detector, counting its runs."""

    def __init__(self, detector: dlib.fhog_object_detector) -> None:
        self.detector, self.runs = detector, 0

    def run(self, *args: object) -> tuple:
        self.runs += 1
        return self.detector.run(*args)


def test_a_small_photos_closer_looks_are_one_run_with_what_both_would_find(held_out) -> None:  # noqa: F811
    """On a 64x64 crop both closer looks' neighbourhoods are the whole photo: HOG runs once, at the lower
    threshold, and finds every box the two runs found (a 64x64 crop's locating: 77 -> 52 ms here)."""
    photo = np.asarray(Image.fromarray(held_out[0][1]).resize((64, 64), Image.Resampling.LANCZOS))
    hole = np.zeros((64, 64), dtype=bool)
    hole[20:44, 16:48] = True  # the eyes
    prefilled = telea(photo, hole)
    locator = FaceLocator()
    hog = locator._detector()
    counting = _Counting(hog)
    locator._local.detector = counting  # this thread's: a single look runs in the caller's thread
    found = locator._closer(prefilled, hole)
    assert counting.runs == 1
    scale = min(CLOSER_SIDE / 64, MAX_CLOSER_ZOOM)
    picture = scale_by(prefilled, scale)
    each = [
        (round(rect.left() / scale), round(rect.top() / scale), float(score))
        for _, threshold in CLOSER_LOOKS
        for rect, score in zip(*hog.run(picture, 1, threshold)[:2], strict=True)
    ]
    assert each, "the crop's face is found by the closer look"
    assert {(box.x, box.y, score) for box, score in found} == set(each)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_locators_prefill_is_the_paste_s_classical_fill(locator: FaceLocator, held_out, family: str) -> None:  # noqa: F811
    """The route hands the locator's Telea pre-fill to the paste instead of filling the hole a second time: the
    same answer, to the byte, with the faces found pasted in and with none."""
    item = scene(2, family, held_out[2])
    damaged = np.where(item.hole[..., None], 0, item.image).astype(np.uint8)
    located = locator.locate(damaged, item.hole)
    generated = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 128, 128)).astype(np.float32))
    fills = [FaceFill(generated, from_landmarks(face.landmarks)) for face in located.faces]
    for faces in (fills, []):
        again = paste_faces(damaged, item.hole, faces, "telea", EDGE_FILL, "poisson")
        reused = paste_faces(damaged, item.hole, faces, "telea", EDGE_FILL, "poisson", located.prefilled)
        np.testing.assert_array_equal(reused, again)
