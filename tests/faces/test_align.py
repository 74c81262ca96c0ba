"""Framing a face as the training crops and putting the fill back: the geometry and the byte-identical promise."""

from __future__ import annotations

import math

import numpy as np
import torch

from app.faces.align import TEMPLATE, Framing, from_landmarks, region_of, warp_in, warp_out
from app.faces.locate import Box, Face
from app.faces.paste import FaceFill, paste_faces
from app.faces.plan import landmarks_plausible, surviving
from app.quality.scenes import scene


def _framing(scale: float, angle_deg: float, shift: tuple[float, float]) -> Framing:
    """photo -> crop: the inverse of placing the crop at `scale` photo px per crop px, rolled and shifted."""
    a = math.radians(angle_deg)
    linear = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    to_photo = np.hstack([linear, np.array(shift, dtype=float)[:, None]])
    inverse = np.linalg.inv(np.vstack([to_photo, [0, 0, 1]]))[:2]
    return Framing(inverse)


def test_landmarks_at_the_template_give_the_identity_framing() -> None:
    framing = from_landmarks(TEMPLATE.copy())
    assert np.allclose(framing.matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert framing.side == 200.0


def test_a_rolled_scaled_face_is_framed_back_exactly() -> None:
    truth = _framing(0.6, 15.0, (40.0, 30.0))
    photo_points = (
        TEMPLATE @ np.linalg.inv(truth.matrix[:, :2]).T - np.linalg.inv(truth.matrix[:, :2]) @ truth.matrix[:, 2]
    )
    framing = from_landmarks(photo_points)
    assert np.allclose(framing.matrix, truth.matrix, atol=1e-9)
    assert math.isclose(framing.side, 120.0) and math.isclose(framing.angle, 15.0, abs_tol=1e-6)


def test_round_trip_keeps_every_known_pixel_byte_identical() -> None:
    """Warp a face in, paste a model answer back: only hole pixels change, and the face's hole is filled from it."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
    hole = np.zeros((160, 200), dtype=bool)
    hole[60:90, 70:130] = True
    framing = _framing(0.7, 10.0, (50.0, 20.0))
    aligned = warp_in(image, hole, framing, 64)
    assert aligned.hole.any() and not aligned.hole.all() and aligned.damaged > 0
    generated = torch.full((3, 64, 64), 0.5)  # a flat answer: 191 in photo units
    out = paste_faces(image, hole, [FaceFill(generated, framing)], "telea", None, "none")
    assert np.array_equal(out[~hole], image[~hole])
    deep = np.zeros_like(hole)
    deep[68:82, 85:115] = True  # well inside the face's square and the hole
    assert np.abs(out[deep].astype(int) - 191).max() <= 1


def test_a_face_at_the_border_is_filled_inside_the_photo_only() -> None:
    """Model pixels beyond the photo count as hole; the paste touches only the photo's own hole pixels."""
    image = np.full((100, 100, 3), 80, dtype=np.uint8)
    hole = np.zeros((100, 100), dtype=bool)
    hole[:20, :30] = True
    framing = _framing(0.5, 0.0, (-40.0, -40.0))  # the crop square hangs over the top-left corner
    aligned = warp_in(image, hole, framing, 64)
    outside = aligned.hole.numpy()[:10, :10]
    assert outside.all()  # beyond the photo: unknown to the search
    assert region_of(framing, hole.shape) == (slice(0, 61), slice(0, 61))
    out = paste_faces(image, hole, [FaceFill(torch.zeros(3, 64, 64), framing)], "telea", None, "none")
    assert np.array_equal(out[~hole], image[~hole]) and out.shape == image.shape


def test_warp_out_inverts_warp_in() -> None:
    """A smooth picture sent through the model's framing and back comes out where it was."""
    ys, xs = np.mgrid[0:120, 0:160]
    image = np.stack([xs * 1.5, ys * 2.0, (xs + ys) * 0.8], axis=-1).clip(0, 255).astype(np.uint8)
    framing = _framing(0.5, -8.0, (30.0, 10.0))
    aligned = warp_in(image, np.zeros((120, 160), dtype=bool), framing, 128)
    pixels = aligned.target.add(1).mul(127.5).permute(1, 2, 0).numpy()
    region = region_of(framing, (120, 160))
    assert region is not None
    back, weight = warp_out(pixels.astype(np.float32), framing, region)
    inside = weight > 0.99
    assert inside.sum() > 1000
    assert np.abs(back[inside] - image[region][inside]).mean() < 2.0


def test_landmarks_frame_a_held_out_face_placed_in_a_photo(held_out, locator) -> None:
    """On undamaged scenes the framing from dlib's landmarks lands within a few crop pixels of the true one."""
    errors = []
    for index in range(6):
        item = scene(index, "off-face", held_out[index])
        faces = locator.detect(item.image, np.zeros(item.image.shape[:2], dtype=bool))
        near = [f for f in faces if item.is_face(*f.box.as_list())]
        if not near:
            continue
        assert landmarks_plausible(near[0])
        framing = from_landmarks(near[0].landmarks)
        truth = item.to_scene[:, :2] @ TEMPLATE.T + item.to_scene[:, 2:3]  # template points in the photo
        mapped = framing.matrix[:, :2] @ truth + framing.matrix[:, 2:3]
        errors.append(float(np.linalg.norm(mapped - TEMPLATE.T, axis=0).mean()))
    assert len(errors) >= 5  # the locator finds the faces (60-200 px)
    assert np.median(errors) < 8.0  # crop pixels of 200; the training crops themselves vary by +-5


def test_a_sliver_of_damage_at_the_corner_is_located_without_error(locator) -> None:
    """dlib's CNN detector fails on a picture smaller than its window: a one-pixel hole in a corner (and a photo
    smaller than that window) must still be answered, with no face."""
    for shape in ((300, 300), (40, 40)):
        image = np.full((*shape, 3), 120, dtype=np.uint8)
        hole = np.zeros(shape, dtype=bool)
        hole[0, 0] = True
        assert locator.detect(image, hole) == []


def test_two_kept_landmarks_fix_the_framing_and_the_third_is_ignored() -> None:
    """A nose guessed wrong under a hole does not pull the framing: the eyes alone land on the template's eyes."""
    truth = _framing(0.6, 12.0, (40.0, 30.0))
    inverse = np.linalg.inv(truth.matrix[:, :2])
    photo_points = TEMPLATE @ inverse.T - inverse @ truth.matrix[:, 2]
    photo_points[2] += (9.0, -7.0)  # the predictor's guess of a hidden nose
    kept = from_landmarks(photo_points, np.array([True, True, False]))
    assert np.allclose(kept.matrix, truth.matrix, atol=1e-9)
    assert not np.allclose(from_landmarks(photo_points).matrix, truth.matrix, atol=1e-3)
    one = from_landmarks(photo_points, np.array([False, False, True]))  # one point fixes no similarity: all three
    assert np.allclose(one.matrix, from_landmarks(photo_points).matrix)


def _face(landmarks: np.ndarray) -> Face:
    return Face(Box(0, 0, 200, 200), landmarks, "detected", 1.0)


def test_landmarks_under_the_hole_do_not_survive_it() -> None:
    hole = np.zeros((200, 200), dtype=bool)
    face = _face(TEMPLATE.copy())
    assert surviving(face, hole).tolist() == [True, True, True]
    hole[100:170, 62:138] = True  # the nose-and-mouth block of the scenes
    assert surviving(face, hole).tolist() == [True, True, False]
    hole[:] = False
    hole[70:75, 130:140] = True  # a scratch just below the right eye, within 0.3 eye distances of it
    assert surviving(face, hole).tolist() == [True, False, True]


def test_a_nose_and_mouth_hole_is_framed_by_the_eyes(held_out, locator) -> None:
    """On held-out scenes with the nose and mouth blocked, the framing puts dlib's eye points exactly on the
    template's eyes (the nose point, a guess under the hole, is left out)."""
    framed = 0
    for index in range(6):
        item = scene(index, "nose-mouth", held_out[index])
        damaged = item.image.copy()
        damaged[item.hole] = 0
        for face in locator.detect(damaged, item.hole):
            alive = surviving(face, item.hole)
            if alive.tolist() != [True, True, False]:
                continue
            framing = from_landmarks(face.landmarks, alive)
            eyes = face.landmarks[:2] @ framing.matrix[:, :2].T + framing.matrix[:, 2]
            assert np.allclose(eyes, TEMPLATE[:2], atol=1e-6)
            framed += 1
    assert framed >= 4
