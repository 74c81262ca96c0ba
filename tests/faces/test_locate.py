"""Finding the damaged face: HOG's closer look around a hole no found face explains."""

from __future__ import annotations

import dlib
import pytest

from app.engine.inpaint import telea
from app.faces.locate import FaceLocator
from app.quality.scenes import scene


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
