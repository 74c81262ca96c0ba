"""The restore page with a one-pass model: no budget to choose, and a restore that keeps every known pixel."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.app.conftest import encode, serving
from tests.app.glcic_store import save_tiny_glcic
from tests.web.test_page import (
    RESULT_TIMEOUT_MS,
    canvas_pixels,
    distance_to_stroke,
    load_photo,
    open_page,
    paint_stroke,
)


@pytest.fixture
def site(make_tiny_store: Callable[..., Path]) -> Iterator[httpx.Client]:
    store = make_tiny_store(("tiny",))
    save_tiny_glcic(store)
    with serving(store) as http:
        yield http


def test_a_one_pass_model_hides_the_budget_and_restores(site: httpx.Client, page: Page, faces: np.ndarray) -> None:
    face = faces[520]
    open_page(page, str(site.base_url))
    expect(page.locator("#presets")).to_be_visible()  # the search model's budget
    page.select_option("#model", "tiny-glcic")
    expect(page.locator("#presets")).to_be_hidden()
    expect(page.locator("#preset-info")).to_contain_text("A glcic model: it takes no iterations or restarts")
    load_photo(page, encode(face))
    radius = paint_stroke(page, face.shape[1])
    page.click("#submit")
    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)

    restored = canvas_pixels(page, "after")
    far = distance_to_stroke(*face.shape[:2]) > radius + 1.5
    np.testing.assert_array_equal(restored[far], face[far])
    expect(page.locator("#timings")).to_contain_text("tiny-glcic:1, one pass")
