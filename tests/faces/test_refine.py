"""The shipped framing network brings a damaged face's framing nearer the training framing than its landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from app.faces.align import from_landmarks
from app.faces.locate import FaceLocator
from app.faces.plan import surviving
from app.faces.refine import FaceFramer
from app.quality.framing_eval import framing_error
from app.quality.scenes import scene
from tests.conftest import SHIPPED_STORE


@pytest.fixture(scope="module")
def framer() -> FaceFramer:
    found = FaceFramer.discover(SHIPPED_STORE, "faces-framing")
    assert found is not None, "the store ships the framing network (python -m training framing)"
    return found


@pytest.mark.parametrize("family", ["eyes", "half"])
def test_the_framer_lands_nearer_the_truth_than_the_surviving_landmarks(
    family: str, framer: FaceFramer, held_out: list, locator: FaceLocator
) -> None:
    landmark_errors, refined_errors = [], []
    for index in range(len(held_out)):
        item = scene(index, family, held_out[index])
        damaged = item.image.copy()
        damaged[item.hole] = 0
        face = next((f for f in locator.detect(damaged, item.hole) if item.is_face(*f.box.as_list())), None)
        if face is None:
            continue
        landmarks = from_landmarks(face.landmarks, surviving(face, item.hole))
        [refined] = framer.refine(damaged, item.hole, [landmarks])
        landmark_errors.append(framing_error(landmarks, item))
        refined_errors.append(framing_error(refined, item))
    assert len(refined_errors) >= 6
    assert np.median(refined_errors) < np.median(landmark_errors)


def test_a_framing_with_nothing_known_is_left_as_it_is(framer: FaceFramer, held_out: list) -> None:
    item = scene(0, "eyes", held_out[0])
    everything = np.ones_like(item.hole)
    framing = from_landmarks(np.array([[300.0, 200.0], [340.0, 200.0], [320.0, 230.0]]))
    [kept] = framer.refine(item.image, everything, [framing])
    assert np.array_equal(kept.matrix, framing.matrix)
