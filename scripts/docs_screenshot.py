"""One page of the built documentation site in Debian's chromium (Playwright), as a PNG.

Serves site/ (run `make docs` first) on a free local port, opens PAGE at 1280x900 and writes the screenshot:

    .venv/bin/python scripts/docs_screenshot.py --page api/reference.html --out docs/web/docs-api-reference.png
"""

from __future__ import annotations

import argparse
import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    parser.add_argument("--page", default="api/reference.html", help="path under the site")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "web" / "docs-api-reference.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    if not (args.site / args.page).is_file():
        parser.error(f"{args.site / args.page} is missing: run `make docs` first")
    executable = shutil.which("chromium") or "/usr/bin/chromium"

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(args.site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/{args.page}", wait_until="networkidle")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            browser.close()
    finally:
        server.shutdown()
    print(f"wrote {args.out}" + (f"; console errors: {errors}" if errors else "; no console error"))


if __name__ == "__main__":
    main()
