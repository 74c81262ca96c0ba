"""Non-square uploads: the model sees an undistorted square around the damage, as it saw squares in training."""

from __future__ import annotations

import numpy as np
import torch

from app.engine import finish, prepare
from app.engine.resize import box_resize
from app.engine.window import model_view, model_window
from tests.engine.test_compose import photo

R = 32


def test_square_uploads_are_seen_whole() -> None:
    hole = np.zeros((100, 100), dtype=bool)
    hole[10:20, 10:20] = True
    assert model_window(hole, R) is None


def test_the_square_holding_the_hole_is_chosen() -> None:
    hole = np.zeros((100, 400), dtype=bool)
    hole[40:60, 330:350] = True  # near the right end of a 4:1 panorama
    rows, cols = model_window(hole, R)  # type: ignore[misc]
    assert (rows.start, rows.stop) == (0, 100)
    assert cols.stop - cols.start == 100 and cols.start <= 330 and cols.stop >= 350
    tall = hole.T.copy()
    rows, cols = model_window(tall, R)  # type: ignore[misc]
    assert (cols.start, cols.stop) == (0, 100) and rows.start <= 330 and rows.stop >= 350


def test_ties_go_to_the_centre() -> None:
    hole = np.zeros((100, 300), dtype=bool)
    hole[45:55, 145:155] = True  # any square from column 55 to 145 holds all of it
    _, cols = model_window(hole, R)  # type: ignore[misc]
    assert cols.start == 100


def test_a_square_with_no_known_pixel_falls_back_to_the_whole_upload() -> None:
    hole = np.zeros((100, 400), dtype=bool)
    hole[:, 200:] = True  # the right half: any square holding the most hole is all hole
    assert model_window(hole, R) is None


def test_model_view_is_the_window_and_the_hole_the_model_sees_through_it() -> None:
    """One box filter for both: the window's hole at R where the upload is windowed, else the whole upload's."""
    wide = np.zeros((100, 400), dtype=bool)
    wide[40:60, 330:350] = True
    window, small = model_view(wide, R)
    assert window == model_window(wide, R) and window is not None
    assert np.array_equal(small, box_resize(wide[window].astype(np.float32), R) > 0)
    for whole in (wide[:, :100].copy(), np.ones((100, 400), dtype=bool)):  # square; a window with nothing known
        window, small = model_view(whole, R)
        assert window is None and np.array_equal(small, box_resize(whole.astype(np.float32), R) > 0)


def test_prepare_sees_the_face_undistorted_and_finish_fills_outside_the_window() -> None:
    """A face in the middle of a 3:1 strip: the target is that square, a scratch far from it is still filled."""
    face = photo(96, 96, seed=1)
    strip = np.concatenate([photo(96, 96, seed=2), face, photo(96, 96, seed=3)], axis=1)
    hole = np.zeros((96, 288), dtype=bool)
    hole[30:60, 130:160] = True  # the face's centre
    hole[10:80, 20:22] = True  # a thin scratch on the left, outside the face's square
    prepared = prepare(strip, hole, R)
    alone = prepare(face, hole[:, 96:192], R)
    assert torch.equal(prepared.target, alone.target) and torch.equal(prepared.hole, alone.hole)
    out = finish(strip, hole, torch.zeros(3, R, R))
    assert np.array_equal(out[~hole], strip[~hole])
    scratch = out[10:80, 20:22].astype(int)
    assert np.abs(scratch - strip[10:80, 20:22].astype(int)).mean() < 20  # filled from its neighbours
