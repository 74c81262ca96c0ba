"""`edge`: a thin scratch on a large upload comes back filled from the photo around it, not the tiny model's blur."""

from __future__ import annotations

import httpx
import numpy as np
from PIL import Image

from tests.app.conftest import damaged, decode, encode, mask_png


def _scratched(face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    photo = np.asarray(Image.fromarray(face).resize((256, 256), Image.Resampling.BICUBIC))
    hole = np.zeros((256, 256), dtype=bool)
    hole[40:220, 126:130] = True  # 4 photo pixels wide: half a pixel of the 32x32 test model
    return photo, hole


def _complete(client: httpx.Client, photo: np.ndarray, hole: np.ndarray, **form: str) -> httpx.Response:
    files = {"image": ("p.png", encode(damaged(photo, hole)), "image/png"), "mask": ("m.png", mask_png(hole))}
    return client.post("/complete", files=files, data={"iterations": "2", **form})


def test_edge_fill_restores_a_scratch_better_than_the_generator_alone(client: httpx.Client, faces: np.ndarray) -> None:
    photo, hole = _scratched(faces[320])
    errors = {}
    for edge in ("telea", "ns", "none"):
        response = _complete(client, photo, hole, edge=edge, blend="none")
        assert response.status_code == 200, response.text
        restored = decode(response.content)
        assert np.array_equal(restored[~hole], photo[~hole])
        errors[edge] = np.abs(restored[hole].astype(float) - photo[hole].astype(float)).mean()
    # unblended, a 32x32 test generator's fill is far off this face; the pixels beside the scratch are not
    assert errors["telea"] < errors["none"] / 2 and errors["ns"] < errors["none"] / 2
    assert _complete(client, photo, hole).content == _complete(client, photo, hole, edge="telea").content


def test_unknown_edge_is_a_422_problem(client: httpx.Client, faces: np.ndarray) -> None:
    photo, hole = _scratched(faces[321])
    response = _complete(client, photo, hole, edge="photoshop")
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "edge" in response.text
