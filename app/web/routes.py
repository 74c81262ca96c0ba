"""`GET /` and `/static/*`: the restore page, plain HTML/CSS/JS shipped inside the package.

The page only talks to the public API (`GET /v1/models`, `POST /v1/faces`, `POST /complete`), so it
needs no route of its own beyond serving its files, and works offline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

# the page's own files and the API on this origin, nothing else: a CDN script could not load even by mistake
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(tags=["page"])


# the header's link to the interactive API docs, left out where the server does not serve them
_DOCS_LINK = '<nav><a href="/docs">API docs</a></nav>'


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index(request: Request) -> HTMLResponse:
    page: str = request.app.state.page
    return HTMLResponse(page, headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"})


def install_page(app: FastAPI) -> None:
    """The page at `/` and its assets under `/static` (revalidated on each load, so an upgrade shows at once)."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert _DOCS_LINK in page, "index.html's docs link changed: update _DOCS_LINK"
    app.state.page = page if app.docs_url else page.replace(_DOCS_LINK, "")
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
