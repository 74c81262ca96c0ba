"""Scenes with held-out faces at known places (app.quality.scenes), and one face locator for the module."""

from __future__ import annotations

import pytest

from app.faces.locate import FaceLocator
from app.quality.faces_eval import held_out_names
from app.quality.scenes import held_out_faces
from tests.conftest import SHARED_DATA, SHIPPED_STORE

FACES_200_ZIP = SHARED_DATA / "utkface_crop_part1_200.zip"


def _held_out(count: int) -> list:
    """The first `count` 200x200 faces no shipped face model trained on (both cards hold them out), by name:
    scene i of `app.quality.scenes` places face i, as the evaluation does."""
    return held_out_faces(FACES_200_ZIP, held_out_names(SHIPPED_STORE)[:count])


@pytest.fixture(scope="session")
def held_out() -> list:
    return _held_out(12)


@pytest.fixture(scope="session")
def held_out_60() -> list:
    return _held_out(60)


@pytest.fixture(scope="session")
def locator() -> FaceLocator:
    return FaceLocator()
