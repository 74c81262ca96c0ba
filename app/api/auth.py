"""Bearer-token check for the routes that spend device time or change the server.

One optional shared token (`IMGCOMP_API_TOKEN`) is what a single-team deployment
needs; anything richer (per-user keys, OAuth) belongs in the gateway in front.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from app.api.deps import SettingsDep
from app.api.problems import Problem

_SCHEME = "bearer "


def require_token(request: Request, settings: SettingsDep) -> None:
    """Pass when no token is configured or the request carries it; a 401 problem otherwise."""
    if settings.api_token is None:
        return
    header = request.headers.get("authorization", "")
    given = header[len(_SCHEME) :].strip() if header.lower().startswith(_SCHEME) else ""
    expected = settings.api_token.get_secret_value()
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Problem(
            "unauthorized",
            "send the server's API token as `Authorization: Bearer <token>` (IMGCOMP_API_TOKEN on the server)",
            headers={"WWW-Authenticate": 'Bearer realm="imgcomp"'},
        )
