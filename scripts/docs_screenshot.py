"""One page of the documentation site in Debian's chromium (Playwright), as a PNG.

Builds the site (`mkdocs build --strict`, as `make docs` does) into a temporary folder, serves it on a
free loopback port, opens PAGE at 1280x900, checks that it rendered (its stylesheets loaded and applied,
no console error, no failed request), writes the screenshot and stops the server:

    .venv/bin/python scripts/docs_screenshot.py --page models.html --out docs/web/docs-site.png
    .venv/bin/python scripts/docs_screenshot.py --page api/reference.html --out docs/web/docs-api-reference.png

`--site DIR` shoots an already built site instead of building one.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
# Material's header is painted by its stylesheet: without the CSS it has no background colour at all
RENDERED = "getComputedStyle(document.querySelector('.md-header')).backgroundColor"
UNSTYLED = ("rgba(0, 0, 0, 0)", "transparent")


def chromium(given: str | None) -> str:
    """Debian's chromium, found as tests/web/conftest.py finds it (never Playwright's own download)."""
    for candidate in (given, os.environ.get("IMGCOMP_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("no chromium: run scripts/ensure-chromium.sh (Debian's chromium through apt) or pass --chromium")


def build(into: Path) -> None:
    """The site as `make docs` builds it (strict), into `into` rather than site/."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    command = [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(into)]
    subprocess.run(command, cwd=ROOT, check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=300)


@contextmanager
def serving(site: Path) -> Iterator[str]:
    """`site` over HTTP on a free 127.0.0.1 port while the block runs; the server is shut down after it."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def shoot(url: str, out: Path, executable: str, width: int, height: int) -> list[str]:
    """Screenshot `url` into `out`; returns what went wrong in the browser (empty: it rendered)."""
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.on(
                "response",
                lambda response: (
                    problems.append(f"{response.status}: {response.url}") if response.status >= 400 else None
                ),
            )
            answer = page.goto(url, wait_until="networkidle", timeout=60_000)
            if answer is None or not answer.ok:
                problems.append(f"{url}: {answer.status if answer else 'no answer'}")
            elif page.evaluate(RENDERED) in UNSTYLED:
                problems.append("the page has no theme stylesheet applied (Material's header is unstyled)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            browser.close()
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", default="models.html", help="path under the site (default models.html)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "web" / "docs-site.png", help="the PNG to write")
    parser.add_argument("--site", type=Path, help="an already built site to shoot (default: build one now)")
    parser.add_argument("--chromium", help="the browser (default: as tests/web finds Debian's chromium)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    executable = chromium(args.chromium)
    with tempfile.TemporaryDirectory(prefix="imgcomp-docs-") as scratch:
        site = args.site or Path(scratch) / "site"
        if args.site is None:
            build(site)
        if not (site / args.page).is_file():
            parser.error(f"{site / args.page} is not a page of the site")
        with serving(site) as base:
            problems = shoot(f"{base}/{args.page}", args.out, executable, args.width, args.height)
    print(f"wrote {args.out}" + (f"; it did not render cleanly: {problems}" if problems else "; rendered cleanly"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
