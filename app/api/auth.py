"""Bearer-token check for the routes that spend device time or change the server.

One optional shared token (`IMGCOMP_API_TOKEN`) is what a single-team deployment
needs; anything richer (per-user keys, OAuth) belongs in the gateway in front.
Completions are open while no token is set (loopback, or a gateway that
authenticates); the routes that change the server (model reload) are closed then.

The check runs twice. `TokenMiddleware` runs a protected route's guard on the request's
headers alone, in front of the upload limits and the admission door: a request without
the token is answered 401 before it takes a queue place and before its body is read or
parsed. The route's own dependency (`Depends(require_token)`) is the second guard, for a
route the middleware does not know about.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import fastapi.routing
from fastapi import Request
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import SettingsDep
from app.api.middleware import COMPLETE_PATH
from app.api.problems import Problem, problem_response
from app.config import Settings
from app.metrics import Metrics

_SCHEME = "bearer "

Guard = Callable[[Request, Settings], None]


def check_token(request: Request, settings: Settings) -> None:
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


def check_admin_token(request: Request, settings: Settings) -> None:
    """For the routes that change the server: closed (403) while no token is configured, else `check_token`."""
    if settings.api_token is None:
        raise Problem(
            "forbidden",
            f"{request.method} {request.url.path} is refused while the server has no API token: set "
            "IMGCOMP_API_TOKEN on the server and send it as `Authorization: Bearer <token>`",
        )
    check_token(request, settings)


# the route dependencies are coroutines so that FastAPI runs them on the event loop, not in a worker thread


async def require_token(request: Request, settings: SettingsDep) -> None:
    """The completion and locating routes' guard: `check_token`."""
    check_token(request, settings)


async def require_admin_token(request: Request, settings: SettingsDep) -> None:
    """The reload route's guard: `check_admin_token`."""
    check_admin_token(request, settings)


# the route dependencies TokenMiddleware runs ahead of the body, by the check each makes from the headers alone
GUARDS: dict[Callable[..., Any], Guard] = {require_token: check_token, require_admin_token: check_admin_token}


def _guards_of(dependant: Dependant) -> list[Callable[..., Any]]:
    """The guards anywhere in a route's dependency tree, in the order FastAPI runs them."""
    found = []
    for sub in dependant.dependencies:
        found += _guards_of(sub)
    if dependant.call in GUARDS:
        found.append(dependant.call)
    return found


class GuardedRoute(NamedTuple):
    """A route that depends on a guard, as the app's router matches it (include prefixes applied)."""

    path: str
    methods: frozenset[str]
    matches: Callable[[Scope], tuple[Match, Scope]]
    guards: tuple[Callable[..., Any], ...]  # GUARDS' keys


def _route_contexts(routes: Sequence[BaseRoute]) -> list[Any]:
    """Every endpoint route; recent FastAPI includes routers lazily, so `app.routes` holds the routers."""
    expand = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(expand(routes)) if expand is not None else list(routes)


def guarded_routes(routes: Sequence[BaseRoute]) -> list[GuardedRoute]:
    """Every route that depends on a guard (its own dependencies or its router's), with its guards."""
    found = []
    for route in _route_contexts(routes):
        dependant = getattr(route, "dependant", None)
        guards = tuple(dict.fromkeys(_guards_of(dependant))) if isinstance(dependant, Dependant) else ()
        if guards:
            found.append(GuardedRoute(route.path, frozenset(route.methods or ()), route.matches, guards))
    return found


class TokenMiddleware:
    """Answers a guarded route's refusal (401 or 403 problem+json) from the headers alone, before the body is read.

    Sits outside the upload limits and the admission door, so a client without the token neither
    holds a queue place nor makes the server read its upload. The refusal closes the connection:
    the server does not read (and throw away) a body that may still be on its way.
    """

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self._routes: list[GuardedRoute] | None = None  # found on the first request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._routes is None:  # the routers are included after the middleware is added
            self._routes = guarded_routes(scope["app"].routes)
        for route in self._routes:
            if route.matches(scope)[0] is not Match.FULL:
                continue
            request = Request(scope)  # headers only: the middleware is never handed `receive`
            try:
                for guard in route.guards:
                    GUARDS[guard](request, self.settings)
            except Problem as refused:
                if scope["path"] == COMPLETE_PATH:  # as the problem handler counts a completion's refusals
                    self.metrics.rejections.labels(reason=refused.reason).inc()
                refused.headers["Connection"] = "close"
                answer = problem_response(refused, scope.get("state", {}).get("request_id"))
                await answer(scope, receive, send)
                return
            break
        await self.app(scope, receive, send)
