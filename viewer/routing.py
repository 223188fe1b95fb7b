"""How the viewer's routes answer errors: each router names its format through its route class.

Pages (`PageRoute`) answer an HTML error page, or a redirect to /login when no one is signed in;
the JSON API (`ApiRoute`) answers `{"detail": ...}`. The format is the route's, whatever the path.
An address no route serves gets the HTML 404 page in a browser, unless it lies under a top
segment of machine routes (e.g. /api/..., /v1/...), where clients expect JSON.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector_api.store.core.db import StoreUnavailable

from .deps import session_principal
from .errors import LoginRequired, ViewerError
from .render import render

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
STORE_DOWN = "the database is unavailable; try again shortly"


class ViewerRoute(APIRoute):
    """A viewer route: a ViewerError it raises (in a dependency or the view), or the database
    being down, is answered by `render_error` in the route's format."""

    error_format = ""

    async def render_error(self, request: Request, exc: ViewerError) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                check_query(request)
                return await handler(request)
            except ViewerError as exc:
                return await self.render_error(request, exc)
            except StoreUnavailable as exc:
                logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
                return await self.render_error(request, ViewerError(STORE_DOWN, status=503))

        return handle


def check_query(request: Request) -> None:
    """400 for a NUL character in the query string: PostgreSQL text cannot hold one (the long
    fuzz run found `?ticket=%00` answering 500)."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise ViewerError(f"{name[:40]!r}: NUL characters are not allowed in parameters", status=400)


class ApiRoute(ViewerRoute):
    """A JSON API route: errors are `{"detail": message}` (401 with a Bearer challenge)."""

    error_format = "json"

    async def render_error(self, request: Request, exc: ViewerError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="flusso"'} if exc.status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)


class PageRoute(ViewerRoute):
    """An HTML page: errors are the error page (navigation kept for a signed-in user); without a
    session, a redirect to /login that comes back here."""

    error_format = "html"

    async def render_error(self, request: Request, exc: ViewerError) -> Response:
        if isinstance(exc, LoginRequired):
            if request.method != "GET":  # a form posted after the session ended: no way back to it
                return RedirectResponse("/login", status_code=303)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return await error_page(request, exc.status, exc.message, look_up_user=exc.status != 503)


async def error_page(request: Request, status: int, message: str, *, look_up_user: bool = True) -> Response:
    principal = None
    if look_up_user:
        try:
            principal = await session_principal(request)  # keeps the navigation on error pages
        except StoreUnavailable:
            pass
    return render(request, "error.html", {"status": status, "message": message, "principal": principal},
                  status=status)


def note_machine_roots(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Record the first path segments of `routers`' machine routes (any format but HTML) in
    `app.state.machine_roots`, e.g. {"api", "v1"}: an unknown address under them answers JSON.
    The collector records its own the same way (collector_api.app)."""
    roots = {route.path.split("/")[1] for router in routers for route in router.routes
             if isinstance(route, APIRoute) and getattr(route, "error_format", "json") != "html"}
    app.state.machine_roots = frozenset(getattr(app.state, "machine_roots", frozenset()) | roots)


async def handle_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    """An address no route serves gets the viewer's 404 page in a browser; everything else keeps FastAPI's JSON."""
    machine = request.url.path.split("/")[1] in getattr(request.app.state, "machine_roots", ())
    if exc.status_code == 404 and not machine and "text/html" in request.headers.get("accept", "").lower():
        return await error_page(request, 404, "there is no page at this address")
    return await http_exception_handler(request, exc)
