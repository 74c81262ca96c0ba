"""The restore page at `/` in a real chromium against a real server: paint, restore, errors, busy, token."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from app.config import Settings
from tests.app.conftest import StepGate, encode, good_request, running, serving
from tests.conftest import FACES_NPZ, SHIPPED_STORE, held_out_indices
from tests.web.conftest import Console

BRUSH = 100  # screen pixels, the slider's unit
STROKE = ((8.0, 30.0), (56.0, 36.0))  # photo pixels, across the face below the eyes
RESULT_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A real face the shipped faces model never trained on (its card's held-out list)."""
    (index,) = held_out_indices(SHIPPED_STORE / "faces" / "1", 1)
    with np.load(FACES_NPZ) as archive:
        image: np.ndarray = archive["images"][index]
    return image


@pytest.fixture(scope="module")
def site(module_store: Path) -> Iterator[httpx.Client]:
    """One server on the tiny store, with a sample grid so the page can show it."""
    samples = np.random.default_rng(2).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    (module_store / "tiny" / "1" / "samples.png").write_bytes(encode(samples))
    with serving(module_store) as http:
        yield http


def open_page(page: Page, url: str) -> None:
    page.goto(url + "/")
    expect(page.locator("#model")).to_be_enabled()


def load_photo(page: Page, data: bytes, name: str = "face.png", mime: str = "image/png") -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])
    expect(page.locator("#file-name")).to_contain_text(name)
    # the face lookup's answer can move the buttons below it: a click racing it lands beside them
    expect(page.locator("#faces-info")).not_to_have_text("Looking for faces…", timeout=RESULT_TIMEOUT_MS)


def paint_stroke(page: Page, width: int) -> float:
    """Drag the mouse along STROKE with the brush at BRUSH screen pixels; returns the brush radius in photo pixels."""
    page.locator("#size").fill(str(BRUSH))
    box = page.locator("#mask").bounding_box()
    assert box is not None
    scale = box["width"] / width
    (x0, y0), (x1, y1) = ((box["x"] + x * scale, box["y"] + y * scale) for x, y in STROKE)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=20)
    page.mouse.up()
    return BRUSH / scale / 2


def choose_budget(page: Page, iterations: int, restarts: int = 1) -> None:
    page.locator('label:has(input[value="custom"])').click()
    page.fill("#iterations", str(iterations))
    page.fill("#restarts", str(restarts))


def canvas_pixels(page: Page, canvas_id: str) -> np.ndarray:
    width, height, flat = page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            return [canvas.width, canvas.height, Array.from(data)];
        }""",
        canvas_id,
    )
    return np.asarray(flat, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def distance_to_stroke(height: int, width: int) -> np.ndarray:
    """Each pixel centre's distance to the stroke's centre line, in photo pixels."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    (x0, y0), (x1, y1) = STROKE
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy), 0, 1)
    return np.hypot(xs - (x0 + t * dx), ys - (y0 + t * dy))


def queue_depth(http: httpx.Client) -> float:
    line = next(line for line in http.get("/metrics").text.splitlines() if line.startswith("imgcomp_queue_depth"))
    return float(line.rsplit(" ", 1)[1])


def status_text(page: Page) -> str:
    return page.locator("#status").inner_text()


def test_page_and_api_routes_are_served(site: httpx.Client) -> None:
    page = site.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (
        ("/static/page.js", "javascript"),
        ("/static/page.css", "text/css"),
        ("/static/icon.svg", "svg"),
    ):
        answer = site.get(asset)
        assert answer.status_code == 200 and kind in answer.headers["content-type"], asset
    assert "http://" not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    missing = site.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert site.get("/healthz").json() == {"status": "ok"}
    assert site.get("/readyz").json()["status"] == "ready"
    assert site.get("/v1/models").json()["default"] == "tiny:1"
    assert site.get("/docs").status_code == 404  # off unless IMGCOMP_DOCS_ENABLED=true
    assert "imgcomp_requests" in site.get("/metrics").text


def test_paint_restore_and_compare(site: httpx.Client, page: Page, face: np.ndarray) -> None:
    open_page(page, str(site.base_url))
    expect(page.locator("#samples")).to_be_visible()  # the model's sample grid as a hint
    load_photo(page, encode(face))
    expect(page.locator("#submit")).to_be_disabled()  # nothing painted yet
    radius = paint_stroke(page, face.shape[1])
    expect(page.locator("#mask-info")).to_contain_text("pixels")
    choose_budget(page, iterations=5)
    page.click("#submit")
    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)

    restored = canvas_pixels(page, "after")
    assert restored.shape == face.shape
    distance = distance_to_stroke(*face.shape[:2])
    far, core = distance > radius + 1.5, distance < radius - 1.5
    assert far.sum() > 0.5 * far.size and core.sum() > 100
    np.testing.assert_array_equal(restored[far], face[far])  # every known pixel comes back as it was
    changed = np.abs(restored.astype(int) - face.astype(int)).max(axis=-1) > 0
    assert changed[core].mean() > 0.9, f"only {changed[core].mean():.0%} of the painted core changed"
    np.testing.assert_array_equal(canvas_pixels(page, "before"), face)

    timings = page.locator("#timings").inner_text()
    assert "tiny:1" in timings and "search" in timings and "server total" in timings
    assert "Restored in" in status_text(page)
    with page.expect_download() as download:
        page.click("#download")
    saved = np.asarray(Image.open(download.value.path()))
    np.testing.assert_array_equal(saved, restored)


def test_undo_and_clear(site: httpx.Client, page: Page, face: np.ndarray) -> None:
    open_page(page, str(site.base_url))
    load_photo(page, encode(face))
    paint_stroke(page, face.shape[1])
    expect(page.locator("#submit")).to_be_enabled()
    page.keyboard.press("Control+z")
    expect(page.locator("#mask-info")).to_have_text("Painted area: none")
    expect(page.locator("#submit")).to_be_disabled()
    paint_stroke(page, face.shape[1])
    page.click("#clear")
    expect(page.locator("#mask-info")).to_have_text("Painted area: none")
    page.click("#undo")
    expect(page.locator("#mask-info")).to_contain_text("pixels")


def test_transparency_becomes_the_mask(site: httpx.Client, page: Page, face: np.ndarray) -> None:
    rgba = np.dstack([face, np.full(face.shape[:2], 255, np.uint8)])
    rgba[20:40, 10:30, 3] = 0
    open_page(page, str(site.base_url))
    load_photo(page, encode(rgba), name="holed.png")
    expect(page.locator("#mask-info")).to_contain_text("400 pixels")  # the 20x20 transparent block
    choose_budget(page, iterations=3)
    page.click("#submit")
    expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    restored = canvas_pixels(page, "after")
    keep = rgba[..., 3] == 255
    np.testing.assert_array_equal(restored[keep], face[keep])


def test_bad_file_shows_the_servers_detail(site: httpx.Client, page: Page, face: np.ndarray, console: Console) -> None:
    """A GIF the browser can show but the service refuses: the page shows the server's own words."""
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="GIF")
    gif = buffer.getvalue()
    refused = site.post("/complete", files={"image": ("face.gif", gif, "image/gif"), "mask": ("m.png", encode(face))})
    assert refused.status_code == 415
    console.expected_statuses.add(415)

    open_page(page, str(site.base_url))
    load_photo(page, gif, name="face.gif", mime="image/gif")
    expect(page.locator("#faces-info")).to_contain_text(refused.json()["detail"])
    paint_stroke(page, face.shape[1])
    page.click("#submit")
    expect(page.locator("#status.error")).to_contain_text(refused.json()["detail"])
    assert "Not a supported image (415)" in status_text(page)
    expect(page.locator("#result")).to_be_hidden()


def test_busy_server_retries_after_retry_after(
    make_settings: Callable[..., Settings],
    page: Page,
    face: np.ndarray,
    faces: np.ndarray,
    console: Console,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real 503: one search held in its first step, a second in the only queue place, then the page's."""
    console.expected_statuses.add(503)
    gate = StepGate(monkeypatch)
    with running(make_settings(queue_size=1, retry_after_s=1)) as url, httpx.Client(base_url=url, timeout=60) as http:
        answers: list[int] = []
        holders = [
            threading.Thread(target=lambda i=i: answers.append(good_request(http, faces[i]).status_code))
            for i in (230, 231)
        ]
        holders[0].start()
        assert gate.entered.wait(30)
        holders[1].start()
        deadline = time.monotonic() + 30
        while queue_depth(http) < 1:
            assert time.monotonic() < deadline, "the second search never queued"
            time.sleep(0.02)

        open_page(page, url)
        load_photo(page, encode(face))
        paint_stroke(page, face.shape[1])
        choose_budget(page, iterations=3)
        page.click("#submit")
        expect(page.locator("#status.retry")).to_contain_text("Server busy: retrying in", timeout=20_000)
        expect(page.locator("#status")).to_contain_text("queue places are taken")  # the server's detail
        gate.release.set()
        expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
        for holder in holders:
            holder.join(60)
        assert answers == [200, 200]


def test_token_is_asked_for_and_sent(module_store: Path, page: Page, face: np.ndarray, console: Console) -> None:
    console.expected_statuses.add(401)
    console.resets_expected = True
    with serving(module_store, api_token="open-sesame") as http:
        open_page(page, str(http.base_url))
        load_photo(page, encode(face))
        paint_stroke(page, face.shape[1])
        choose_budget(page, iterations=3)
        page.click("#submit")
        expect(page.locator("#token-dialog")).to_be_visible()
        expect(page.locator("#token-detail")).to_contain_text("Authorization: Bearer")
        page.fill("#token", "open-sesame")
        page.keyboard.press("Enter")
        expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
        assert page.evaluate("sessionStorage.getItem('imgcomp-token')") == "open-sesame"


def test_phone_width_touch_painting(site: httpx.Client, browser: Browser, face: np.ndarray) -> None:
    """At 390 px with a touchscreen: nothing overflows sideways, a finger paints, the keyboard switches tools."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    phone = context.new_page()
    errors: list[str] = []
    phone.on("console", lambda message: message.type == "error" and errors.append(message.text))
    phone.on("pageerror", lambda error: errors.append(str(error)))
    try:
        open_page(phone, str(site.base_url))
        load_photo(phone, encode(face))
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        box = phone.locator("#mask").bounding_box()
        assert box is not None and box["width"] > 300  # the photo fills the phone's width
        touch = context.new_cdp_session(phone)
        y = box["y"] + box["height"] / 2
        xs = np.linspace(box["x"] + 20, box["x"] + box["width"] - 20, 12)
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xs[0], "y": y}]})
        for x in xs[1:]:
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        expect(phone.locator("#mask-info")).to_contain_text("pixels")
        expect(phone.locator("#submit")).to_be_enabled()
        painted = phone.locator("#mask-info").inner_text()

        phone.keyboard.press("e")  # the eraser, from the keyboard
        assert phone.locator('input[value="eraser"]').is_checked()
        phone.keyboard.press("]")
        expect(phone.locator("#size-value")).to_have_text("32 px")
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xs[5], "y": y}]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        expect(phone.locator("#mask-info")).not_to_have_text(painted)  # the eraser took some away
    finally:
        context.close()
    assert errors == []


def test_cancel_frees_the_search(
    make_settings: Callable[..., Settings], page: Page, face: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel while the search runs closes the request; the server counts it as gone and keeps serving."""
    gate = StepGate(monkeypatch)
    with running(make_settings()) as url, httpx.Client(base_url=url, timeout=60) as http:
        open_page(page, url)
        load_photo(page, encode(face))
        paint_stroke(page, face.shape[1])
        choose_budget(page, iterations=3)
        page.click("#submit")
        expect(page.locator("#status.busy")).to_contain_text("Restoring")
        assert gate.entered.wait(30)
        page.click("#cancel")
        expect(page.locator("#status.error")).to_contain_text("Cancelled")
        deadline = time.monotonic() + 30
        while 'imgcomp_rejections_total{reason="client-gone"} 1.0' not in http.get("/metrics").text:
            assert time.monotonic() < deadline, "the server never saw the client leave"
            time.sleep(0.05)
        gate.release.set()
        expect(page.locator("#submit")).to_be_enabled()
        page.click("#submit")
        expect(page.locator("#result")).to_be_visible(timeout=RESULT_TIMEOUT_MS)


# Some Chromium builds (Debian's 156) prune a zero-length path and paint nothing for it; this makes every build do so
_PRUNE_ZERO_LENGTH_LINES = """
(() => {
  const proto = CanvasRenderingContext2D.prototype;
  const moveTo = proto.moveTo, lineTo = proto.lineTo, stroke = proto.stroke, beginPath = proto.beginPath;
  proto.beginPath = function () { this.__points = []; return beginPath.call(this); };
  proto.moveTo = function (x, y) { (this.__points ||= []).push([x, y]); return moveTo.call(this, x, y); };
  proto.lineTo = function (x, y) { (this.__points ||= []).push([x, y]); return lineTo.call(this, x, y); };
  proto.stroke = function (...args) {
    const points = this.__points || [];
    if (points.length && points.every(([x, y]) => x === points[0][0] && y === points[0][1])) return;
    return stroke.apply(this, args);
  };
})();
"""


def test_a_click_paints_a_dot_and_a_tap_of_the_eraser_erases(site: httpx.Client, page: Page, face: np.ndarray) -> None:
    """A click without a drag paints a disc of the brush's size, and the eraser's click takes one away, on a
    Chromium that draws nothing for a zero-length line."""
    page.add_init_script(_PRUNE_ZERO_LENGTH_LINES)
    open_page(page, str(site.base_url))
    load_photo(page, encode(face))
    page.locator("#size").fill(str(BRUSH))
    box = page.locator("#mask").bounding_box()
    assert box is not None
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(*centre)
    painted = canvas_pixels(page, "mask").any(axis=-1)
    radius = BRUSH / 2 * face.shape[1] / box["width"]
    assert painted.sum() > 0.5 * np.pi * radius**2  # a disc, not a speck
    page.check('input[value="eraser"]')
    page.mouse.click(*centre)
    assert canvas_pixels(page, "mask").any(axis=-1).sum() < painted.sum() // 2  # only the antialiased rim is left
