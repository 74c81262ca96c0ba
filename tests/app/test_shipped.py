"""The shipped face models through a real server: a held-out face with its centre destroyed comes back restored."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.app.conftest import center_hole, decode, encode, mask_png, serving
from tests.conftest import FACES_NPZ, SHIPPED_STORE
from training.checkpoint import has_encoder, read_card
from training.kinds import kind_of

# IMGCOMP_FACES_MODEL points the test at another version folder while the shipped one trains (as in tests/engine)
SEARCH = Path(os.environ.get("IMGCOMP_FACES_MODEL", SHIPPED_STORE / "faces" / "2"))
ONE_PASS = SHIPPED_STORE / "faces-glcic" / "1"
SEARCH_128 = SHIPPED_STORE / "faces-128" / "2"  # a 64x64 upload is brought up to its 128x128 and the fill back down


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.mark.slow
@pytest.mark.parametrize("model", [SEARCH, ONE_PASS, SEARCH_128], ids=lambda path: f"{path.parent.name}:{path.name}")
def test_held_out_face_over_http(faces: np.ndarray, model: Path) -> None:
    if not (model / "model.json").exists():
        pytest.skip(f"{model} is not trained yet: `python -m training train|glcic --name ...` writes it")
    card = read_card(model)
    held_out = set(card["dataset"]["held_out"])
    with np.load(FACES_NPZ) as archive:
        index = next(i for i, name in enumerate(archive["filenames"]) if str(name) in held_out)
    truth = faces[index]
    hole = center_hole(64, 64)
    upload = truth.copy()
    upload[hole] = np.random.default_rng(0).integers(0, 256, (int(hole.sum()), 3))  # the truth is gone
    key = f"{model.parent.name}:{model.name}"
    with serving(model.parent.parent, default_model=model.parent.name) as http:
        response = http.post(
            "/complete",
            files={"image": ("face.png", encode(upload)), "mask": ("mask.png", mask_png(hole))},
            data={"model": key},  # the shipped defaults: the encoder's start and its measured budget
        )
    assert response.status_code == 200, response.text
    assert response.headers["x-model"] == key
    if kind_of(card).name == "glcic":
        assert (response.headers["x-init"], response.headers["x-iterations"]) == ("none", "0")
    else:
        assert response.headers["x-init"] == ("encoder" if has_encoder(card) else "random")
    restored = decode(response.content)
    np.testing.assert_array_equal(restored[~hole], truth[~hole])
    assert _psnr(restored[hole], truth[hole]) > _psnr(upload[hole], truth[hole]) + 5.0
