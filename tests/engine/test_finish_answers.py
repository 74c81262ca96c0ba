"""`finish` answers exactly what the full-photo path answered before it worked on the hole's box.

The hashes were computed from `finish` at commit ccc07c4 (blend, edge fill and composition over the
whole model window and photo), before any of it was narrowed to the hole's neighbourhood: same
request, same bytes. Cases cover a square upload at the model's size, finer squares, wide and tall
uploads seen through a window (with hole pixels outside it), holes on the border, both blends, both
classical fills and none, a grey generator, and boxes above the edge fill's MAX_EDGE_PIXELS.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from app.engine.compose import finish, finish_planned, plan_finish, prepare
from app.engine.depth import edge_fill


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth gradients plus grain: resampling, blending and inpainting all have something to get wrong."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    grain = np.random.default_rng(seed).integers(0, 24, (height, width, 3))
    base = np.stack([180 * x + 30, 140 * y + 50, 90 * np.sin(6 * x * y) + 110], axis=-1)
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def _hole(height: int, width: int, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Blocks given as (top, left, bottom, right) fractions of the photo."""
    hole = np.zeros((height, width), dtype=bool)
    for top, left, bottom, right in boxes:
        hole[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return hole


def _generated(channels: int, resolution: int, seed: int) -> torch.Tensor:
    values = np.random.default_rng(seed).uniform(-1, 1, (channels, resolution, resolution)).astype(np.float32)
    return torch.from_numpy(values)


# (height, width, hole boxes, resolution, channels, blend, edge) -> sha256 of the finished pixels
CASES: dict[str, tuple[int, int, list[tuple[float, float, float, float]], int, int, str, str]] = {
    "64 square": (64, 64, [(0.25, 0.25, 0.75, 0.75)], 64, 3, "poisson", "telea"),
    "200 square": (200, 200, [(0.3, 0.2, 0.6, 0.55)], 64, 3, "poisson", "telea"),
    "512 square ns": (512, 512, [(0.2, 0.4, 0.45, 0.6)], 64, 3, "poisson", "ns"),
    "wide window": (200, 320, [(0.3, 0.55, 0.7, 0.8)], 64, 3, "poisson", "telea"),
    "tall outside window": (400, 150, [(0.05, 0.3, 0.12, 0.7), (0.5, 0.2, 0.7, 0.8)], 64, 3, "poisson", "telea"),
    "border blend none": (300, 300, [(0.0, 0.0, 0.3, 0.4), (0.8, 0.7, 1.0, 1.0)], 128, 3, "none", "ns"),
    "edge none": (240, 360, [(0.2, 0.3, 0.6, 0.6)], 64, 3, "poisson", "none"),
    "grey generator": (128, 128, [(0.4, 0.1, 0.9, 0.5)], 64, 1, "poisson", "telea"),
    "1280x886 face block": (886, 1280, [(0.2, 0.42, 0.45, 0.58)], 64, 3, "poisson", "telea"),
    "1280x886 box above the edge limit": (
        886,
        1280,
        [(0.0, 0.0, 0.1, 0.1), (0.9, 0.9, 1.0, 1.0)],
        64,
        3,
        "poisson",
        "telea",
    ),
}

HASHES = {
    "64 square": "5b2c8e83607e7b74c8097949fb9efe3e6893bf6699147d534a37777d83a9e5c5",
    "200 square": "94bde883483e2779f00bc01ad720b62c14fe7ce4aa28b69dd58239c622e01bdc",
    "512 square ns": "28ff08d35d5972e536352d54e5625979de3240dd9c7c732a1795937159e2dc0f",
    "wide window": "7e6ba8acf017248d8b07a33d46ecb906e4938ae9c69d00764837b1361ca2c050",
    "tall outside window": "f8e70b508d69edb53fbb4016e7bc33396294cdf6ebcffd21d92cdd7cf14ce1bd",
    "border blend none": "bc53f180d8e1eec88aff08b992bcd86b215b8979899f9b6672197d21d9ccf12e",
    "edge none": "fa2f6b47db3daeeea232ce4eadea9bba08b00dfc6497d95adcf43bf1c6e59a21",
    "grey generator": "02debdb462abd3534205b479de836b5895978822cd568d6d7cdb3e359fc1c7de",
    "1280x886 face block": "d7d8448c33edb0c0cbcd47afe4a59667c3a6314610a5130c2550ae19c734a2df",
    "1280x886 box above the edge limit": "d402a35e7fe6043d5914a22e79879deb82a324e2e5f2acbff6a55dd344cbfa1e",
}


def _finished(name: str) -> np.ndarray:
    height, width, boxes, resolution, channels, blend, edge = CASES[name]
    image = _photo(height, width, seed=len(name))
    hole = _hole(height, width, boxes)
    return finish(image, hole, _generated(channels, resolution, seed=len(name)), blend=blend, edge=edge_fill(edge))


@pytest.mark.parametrize("name", list(CASES))
def test_finish_answers_what_the_full_photo_path_answered(name: str) -> None:
    out = _finished(name)
    assert hashlib.sha256(out.tobytes()).hexdigest() == HASHES[name]


@pytest.mark.parametrize("name", list(CASES))
def test_planned_with_prepare_s_window_answers_the_same(name: str) -> None:
    """The service's path: prepare's window, the plan made before the answer exists, then the answer."""
    height, width, boxes, resolution, channels, blend, edge = CASES[name]
    image, hole = _photo(height, width, seed=len(name)), _hole(height, width, boxes)
    window = prepare(image, hole, resolution).window
    plan = plan_finish(image, hole, resolution, blend, edge_fill(edge), window=window)
    out = finish_planned(image, hole, _generated(channels, resolution, seed=len(name)), plan)
    assert hashlib.sha256(out.tobytes()).hexdigest() == HASHES[name]


@pytest.mark.parametrize("name", list(CASES))
def test_known_pixels_stay_the_upload_s(name: str) -> None:
    height, width, boxes, *_ = CASES[name]
    hole = _hole(height, width, boxes)
    assert np.array_equal(_finished(name)[~hole], _photo(height, width, seed=len(name))[~hole])
