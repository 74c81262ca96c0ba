"""The restore page's face boxes in a real chromium against a real server: the box the locator finds is drawn
where the face is; the user deletes it, draws one, moves it; Restore sends the edited box as `faces=`.

Geometry only: every check compares element rectangles with photo coordinates scaled by the displayed
size, never pixel colours, and every wait is for a condition (Playwright's `expect`), never a delay.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import FilePayload, FloatRect, Page, expect

from tests.app.conftest import encode, serving
from tests.app.face_scene import Scene, face_scene, iou, no_face

RESULT_TIMEOUT_MS = 60_000
BOX_TOLERANCE_PX = 2.5  # photo pixels: a screen pixel is about 1.2 of them at this viewport
# records the text fields of each form the page sends to /complete (a multipart body with files is not
# readable from the network events), wrapping fetch before the page's script runs
_RECORD_FORMS = """
(() => {
  const fetch = window.fetch;
  window.__sentForms = [];
  window.fetch = function (url, options) {
    if (String(url).endsWith("/complete") && options && options.body instanceof FormData) {
      const fields = {};
      for (const [name, value] of options.body.entries()) if (typeof value === "string") fields[name] = value;
      window.__sentForms.push(fields);
    }
    return fetch.apply(this, arguments);
  };
})();
"""


@pytest.fixture(scope="module")
def site(module_store: Path) -> Iterator[httpx.Client]:
    """One server on the tiny store, its `tiny` model counted as a face model (region=auto by default)."""
    with serving(module_store, face_models=("tiny",), default_iterations=2) as http:
        yield http


@pytest.fixture(scope="module")
def scene() -> Scene:
    return face_scene()


class Shown:
    """The photo as the page shows it: converts between photo pixels and page coordinates."""

    def __init__(self, page: Page, width: int) -> None:
        box = page.locator("#mask").bounding_box()
        assert box is not None
        self.x, self.y, self.scale = box["x"], box["y"], box["width"] / width

    def to_page(self, x: float, y: float) -> tuple[float, float]:
        return self.x + x * self.scale, self.y + y * self.scale

    def to_photo(self, rect: FloatRect | None) -> tuple[float, float, float, float]:
        assert rect is not None
        s = self.scale
        return ((rect["x"] - self.x) / s, (rect["y"] - self.y) / s, rect["width"] / s, rect["height"] / s)


def open_photo(page: Page, url: str, photo: bytes) -> None:
    page.add_init_script(_RECORD_FORMS)
    page.goto(url + "/")
    expect(page.locator("#model")).to_be_enabled()
    payload: FilePayload = {"name": "scene.png", "mimeType": "image/png", "buffer": photo}
    page.set_input_files("#file", files=[payload])
    expect(page.locator("#file-name")).to_contain_text("scene.png")


def drawn_boxes(page: Page, shown: Shown) -> list[tuple[float, float, float, float]]:
    boxes = page.locator(".face-box:not(.preview)")
    return [shown.to_photo(boxes.nth(i).bounding_box()) for i in range(boxes.count())]


def assert_near(drawn: tuple[float, ...], expected: tuple[float, ...] | list[int]) -> None:
    assert all(abs(a - b) <= BOX_TOLERANCE_PX for a, b in zip(drawn, expected, strict=True)), (drawn, expected)


def drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=12)
    page.mouse.up()


def paint_over_face(page: Page, scene: Scene, shown: Shown) -> None:
    """A brush stroke across the face's nose and mouth."""
    x, y, w, h = scene.face
    page.locator("#size").fill("30")
    drag(page, shown.to_page(x + w * 0.3, y + h * 0.7), shown.to_page(x + w * 0.7, y + h * 0.7))
    expect(page.locator("#submit")).to_be_enabled()


def restore(page: Page) -> tuple[dict[str, str], dict[str, Any]]:
    page.locator('label:has(input[value="custom"])').click()
    page.fill("#iterations", "2")
    with page.expect_response(lambda r: r.url.endswith("/complete") and r.request.method == "POST") as answered:
        page.click("#submit")
    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    response = answered.value
    assert response.ok, response.text()
    [fields] = page.evaluate("window.__sentForms")
    return fields, response.json()


def test_found_box_is_drawn_on_the_face_then_edited_and_sent(site: httpx.Client, page: Page, scene: Scene) -> None:
    photo = encode(scene.photo)
    located = site.post("/v1/faces", files={"image": ("scene.png", photo, "image/png")}).json()["faces"]
    assert len(located) == 1 and iou(tuple(located[0]["box"]), scene.face) > 0.6

    open_photo(page, str(site.base_url), photo)
    expect(page.locator(".face-box")).to_have_count(1)
    shown = Shown(page, scene.photo.shape[1])
    assert shown.scale < 0.95  # shown smaller than the photo: the boxes must scale with it
    [drawn] = drawn_boxes(page, shown)
    assert_near(drawn, located[0]["box"])  # where the server found it
    assert iou(drawn, scene.face) > 0.6  # and so on the face
    expect(page.locator("#faces-info")).to_contain_text("1 face box")

    paint_over_face(page, scene, shown)  # the brush paints through the boxes
    page.keyboard.press("f")
    assert page.locator('input[value="faces"]').is_checked()

    page.locator(".face-box .face-delete").click()  # delete the found box
    expect(page.locator(".face-box")).to_have_count(0)
    expect(page.locator("#faces-info")).to_contain_text("All deleted")

    x, y, w, h = scene.face
    drag(page, shown.to_page(x + 5, y + 5), shown.to_page(x + w - 5, y + h - 5))  # draw a new one
    expect(page.locator(".face-box")).to_have_count(1)
    [added] = drawn_boxes(page, shown)
    assert_near(added, (x + 5, y + 5, w - 10, h - 10))

    dx, dy = -12, 8  # move it (grabbed at its centre, not at its ×)
    centre = (added[0] + added[2] / 2, added[1] + added[3] / 2)
    drag(page, shown.to_page(*centre), shown.to_page(centre[0] + dx, centre[1] + dy))
    [moved] = drawn_boxes(page, shown)
    assert_near(moved, (added[0] + dx, added[1] + dy, added[2], added[3]))
    expect(page.locator("#faces-info")).to_contain_text("Edited")

    fields, answer = restore(page)
    sent = fields.get("faces")
    assert sent is not None and re.fullmatch(r"\d+,\d+,\d+,\d+", sent), sent
    box = [int(v) for v in sent.split(",")]
    assert_near(moved, box)  # the box as drawn, in whole photo pixels
    assert answer["region"] == "auto"
    [report] = answer["faces"]
    assert report["box"] == box and report["source"] == "given"  # the server used the page's box, not its own

    # the answer's status is shown on the box the server used
    expect(page.locator(".face-box")).to_have_count(1)
    expect(page.locator(".face-box")).to_have_attribute("data-status", report["status"])
    expect(page.locator(".face-box .face-caption")).to_be_visible()
    assert_near(drawn_boxes(page, Shown(page, scene.photo.shape[1]))[0], box)  # (the result scrolled the page)
    expect(page.locator("#timings")).to_contain_text("faces")


def test_unedited_boxes_are_not_sent(site: httpx.Client, page: Page, scene: Scene) -> None:
    """Left as found, the page sends no faces=: the server locates them itself, with the mask in view."""
    open_photo(page, str(site.base_url), encode(scene.photo))
    expect(page.locator(".face-box")).to_have_count(1)
    shown = Shown(page, scene.photo.shape[1])
    paint_over_face(page, scene, shown)
    fields, answer = restore(page)
    assert "faces" not in fields and "region" not in fields
    assert [face["source"] for face in answer["faces"]] == ["detected"]
    expect(page.locator(".face-box")).to_have_attribute("data-status", answer["faces"][0]["status"])


def test_every_box_deleted_restores_the_whole_photo(site: httpx.Client, page: Page, scene: Scene) -> None:
    open_photo(page, str(site.base_url), encode(scene.photo))
    expect(page.locator(".face-box")).to_have_count(1)
    paint_over_face(page, scene, Shown(page, scene.photo.shape[1]))
    page.locator(".face-box").focus()
    page.keyboard.press("Delete")  # the keyboard's way to delete a box
    expect(page.locator(".face-box")).to_have_count(0)
    fields, answer = restore(page)
    assert "faces" not in fields and fields["region"] == "whole"
    assert answer["region"] == "whole" and answer["faces"] == []


def test_a_photo_without_a_face_draws_no_box(site: httpx.Client, page: Page) -> None:
    open_photo(page, str(site.base_url), encode(no_face()))
    expect(page.locator("#faces-info")).to_contain_text("No face found")
    expect(page.locator(".face-box")).to_have_count(0)
