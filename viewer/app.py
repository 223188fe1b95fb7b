"""Mount the viewer on the app: pages, JSON API, static files, security headers, error pages."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector_api.store.db import StoreUnavailable
from config.server import ServerSettings

from .auth import LoginLimiter, SessionCodec, session_principal
from .errors import LoginRequired, ViewerError
from .render import create_environment, render
from .security import SecurityHeaders

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class ViewerContext:
    pool: AsyncConnectionPool
    settings: ServerSettings
    codec: SessionCodec
    limiter: LoginLimiter
    env: object  # jinja2.Environment
    menu_cache: dict = field(default_factory=dict)  # tenant -> (monotonic time, filter menu values)

    @property
    def cookie_secure(self) -> bool:
        return self.settings.flusso_cookie_secure


def _wants_json(request: Request) -> bool:
    """HTML error pages for the viewer's pages only; JSON for its API and anything else."""
    path = request.url.path
    is_page = path in ("/", "/login", "/logout", "/api/docs") or path == "/tickets" or path.startswith("/tickets/")
    return not is_page


async def handle_viewer_error(request: Request, exc: ViewerError) -> Response:
    if _wants_json(request):
        headers = {"WWW-Authenticate": 'Bearer realm="flusso"'} if exc.status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
    if isinstance(exc, LoginRequired):
        if request.method != "GET":  # a form posted after the session ended: no way back to it
            return RedirectResponse("/login", status_code=303)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    principal = None
    if exc.status != 503:
        try:
            principal = await session_principal(request)  # keeps the navigation on error pages
        except StoreUnavailable:
            pass
    return render(request, "error.html", {"status": exc.status, "message": exc.message, "principal": principal},
                  status=exc.status)


# Paths whose errors stay machine-readable (JSON, OTLP status) whatever the client accepts.
MACHINE_PREFIXES = ("/api/", "/v1/", "/healthz", "/readyz", "/metrics")


def _browser_wants_html(request: Request) -> bool:
    """A browser navigating to a page: not an API or collector path, and text/html accepted."""
    path = request.url.path
    if path == "/api" or path.startswith(MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


async def handle_http_exception(request: Request, exc: StarletteHTTPException) -> Response:
    """Unknown pages get the viewer's 404 page in a browser; everything else keeps FastAPI's JSON."""
    if exc.status_code == 404 and _browser_wants_html(request):
        principal = None
        try:
            principal = await session_principal(request)  # keeps the navigation for a signed-in user
        except StoreUnavailable:
            pass
        return render(request, "error.html", {"status": 404, "message": "there is no page at this address",
                                              "principal": principal}, status=404)
    return await http_exception_handler(request, exc)


async def handle_store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
    logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return await handle_viewer_error(request, ViewerError("the database is unavailable; try again shortly", status=503))


def install_viewer(app: FastAPI, pool: AsyncConnectionPool, settings: ServerSettings) -> None:
    """Add the viewer's routes, static files, security headers and error handlers to `app`."""
    from .views import api, login, overview, ticket, tickets

    secret = settings.flusso_session_secret
    if not secret:
        secret = secrets.token_urlsafe(32)
        logger.warning("FLUSSO_SESSION_SECRET is unset: sessions end when this process stops")
    app.state.viewer = ViewerContext(
        pool=pool, settings=settings,
        codec=SessionCodec(secret, settings.flusso_session_hours * 3600),
        limiter=LoginLimiter(settings.flusso_login_attempts_per_minute),
        env=create_environment(),
    )
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(ViewerError, handle_viewer_error)
    app.add_exception_handler(StoreUnavailable, handle_store_unavailable)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (login, overview, tickets, ticket, api):
        app.include_router(module.router)
    app.include_router(api.docs_router)
