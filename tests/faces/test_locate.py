"""Finding the damaged face: HOG's closer look around a hole no found face explains."""

from __future__ import annotations

import dlib
import numpy as np
import pytest

from app.engine.inpaint import telea
from app.faces.locate import Box, FaceLocator
from app.quality.scenes import Scene, scene


def _near(box: Box, item: Scene) -> bool:
    centre = item.to_scene[:, :2] @ np.array([100.0, 100.0]) + item.to_scene[:, 2]
    return bool(np.hypot(box.x + box.w / 2 - centre[0], box.y + box.h / 2 - centre[1]) < item.side / 3)


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
        assert not any(_near(Box(r.left(), r.top(), r.width(), r.height()), item) for r in rects)
    assert [_near(face.box, item) for face in locator.detect(damaged, item.hole)] == [True]
