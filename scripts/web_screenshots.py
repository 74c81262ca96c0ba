"""Screenshots of the restore page at `/`, before and after a completion, at desktop and phone width.

Serves the shipped models (`model_store`, default `faces`) on a loopback port, opens the page in
Debian's chromium through Playwright, loads a held-out face with a scratch across it, paints over
the scratch with the mouse, restores it with the default preset and saves four PNGs:

    .venv/bin/python scripts/web_screenshots.py --out docs/web
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from playwright.sync_api import Page, sync_playwright

from app.bench.server import serving
from app.config import Settings

REPO = Path(__file__).resolve().parents[1]
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
SIDE = 256
# the scratch, in the photo's pixels: a crease from the forehead across one eye to the cheek
SCRATCH = [(40, 70), (100, 95), (150, 130), (200, 150), (230, 190)]


def damaged_face(data: Path, card: Path, index: int) -> Image.Image:
    """A held-out face (never trained on), enlarged, with a pale scratch drawn across it."""
    held_out = set(json.loads(card.read_text())["dataset"]["held_out"])
    with np.load(data) as archive:
        names = [str(name) for name in archive["filenames"]]
        picks = [i for i, name in enumerate(names) if name in held_out]
        face = Image.fromarray(archive["images"][picks[index]]).resize((SIDE, SIDE), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(face)
    draw.line(SCRATCH, fill=(236, 232, 220), width=9, joint="curve")
    return face


def paint(page: Page, path: list[tuple[int, int]]) -> None:
    """Drag the mouse along `path` (photo pixels) over the mask canvas."""
    box = page.locator("#mask").bounding_box()
    assert box is not None
    scale = box["width"] / SIDE
    points = [(box["x"] + x * scale, box["y"] + y * scale) for x, y in path]
    page.mouse.move(*points[0])
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*point, steps=12)
    page.mouse.up()


def shoot(url: str, photo: Path, out: Path, chromium: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for name, viewport in SIZES.items():
            page = browser.new_page(viewport=viewport)
            errors: list[str] = []
            page.on("console", lambda message, errors=errors: message.type == "error" and errors.append(message.text))
            page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
            page.goto(url)
            page.wait_for_selector("#model:not([disabled])")
            page.set_input_files("#file", str(photo))
            page.locator("#size").fill("20" if name == "phone" else "34")
            page.evaluate("document.activeElement.blur()")
            paint(page, SCRATCH)
            page.screenshot(path=out / f"page-{name}-before.png", full_page=True)
            page.click("#submit")
            page.wait_for_selector("#result:not([hidden])", timeout=120_000)
            page.screenshot(path=out / f"page-{name}-after.png", full_page=True)
            assert not errors, errors
            page.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "web")
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "utkface_crop_part1_64.npz")
    parser.add_argument("--face", type=int, default=3, help="which held-out face")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(model_store=args.model_store, devices="cpu", torch_threads=1)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as scratch:
        photo = Path(scratch) / "scratched-face.png"
        damaged_face(args.data, args.model_store / "faces" / "1" / "model.json", args.face).save(photo)
        with serving(settings) as url:
            shoot(url, photo, args.out, args.chromium)
    print(f"wrote {', '.join(sorted(p.name for p in args.out.glob('page-*.png')))} to {args.out}")


if __name__ == "__main__":
    main()
