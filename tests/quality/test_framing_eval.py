"""The framing evaluation's error: how far a framing puts the template's points from where the scene put them."""

from __future__ import annotations

import cv2
import numpy as np

from app.faces.align import TEMPLATE, Framing
from app.quality.framing_eval import framing_error
from app.quality.scenes import scene


def test_the_true_framing_has_no_error_and_a_shift_its_size() -> None:
    face = ("face", np.full((200, 200, 3), 128, dtype=np.uint8))
    item = scene(0, "eyes", face)
    truth = Framing(cv2.invertAffineTransform(item.to_scene))
    assert framing_error(truth, item) < 1e-9
    shifted = Framing(truth.matrix + np.array([[0.0, 0.0, 3.0], [0.0, 0.0, -4.0]]))  # 3 right, 4 up in the crop
    assert abs(framing_error(shifted, item) - 5.0) < 1e-9
    doubled = Framing(truth.matrix * 2)  # every point twice as far from the crop's origin
    assert abs(framing_error(doubled, item) - float(np.linalg.norm(TEMPLATE, axis=1).mean())) < 1e-6
