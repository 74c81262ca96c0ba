"""`GET /` and `/static/*`: the restore page, plain HTML/CSS/JS shipped inside the package.

The page only talks to the public API (`GET /v1/models`, `POST /v1/faces`, `POST /complete`), so it
needs no route of its own beyond serving its files, and works offline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

# the page's own files and the API on this origin, nothing else: a CDN script could not load even by mistake
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(tags=["page"])


@router.get("/", response_class=FileResponse, include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


def install_page(app: FastAPI) -> None:
    """The page at `/` and its assets under `/static` (revalidated on each load, so an upgrade shows at once)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
