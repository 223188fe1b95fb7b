"""Mount the viewer on the app: pages, JSON API, static files, security headers, 404 page.

Each router renders its own errors (viewer.routing): HTML for pages, JSON for the API.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector_api.contract.review_text import Scrubber, review_flags
from collector_api.store.core.job_status import JobBoard
from config.server import ServerSettings

from .auth import FailureDelay, LoginLimiter, PasswordVerifier, SessionCodec
from .context import ViewerContext
from .render import create_environment
from .routing import handle_http_exception, note_machine_roots
from .security import SecurityHeaders
from .views import (
    alerts,
    api,
    compare,
    datasets,
    erasures,
    evaluators,
    experiments,
    ingest,
    login,
    overview,
    reviews,
    sessions,
    ticket,
    tickets,
    usage,
)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"


def review_hash_key(settings: ServerSettings, session_secret: str) -> bytes:
    """The HMAC key of PII tokens in review notes: FLUSSO_REVIEW_HASH_KEY, else derived from the session secret."""
    if settings.flusso_review_hash_key:
        return settings.flusso_review_hash_key.get_secret_value().encode()
    return hmac.new(session_secret.encode(), b"flusso.review-pii", hashlib.sha256).digest()


def install_viewer(app: FastAPI, pool: AsyncConnectionPool, settings: ServerSettings,
                   jobs: JobBoard | None = None) -> None:
    """Add the viewer's routes, static files, security headers and 404 page to `app`; `jobs` is
    the process's job board (the background jobs' lag on /ingest)."""
    secret = settings.flusso_session_secret.get_secret_value() if settings.flusso_session_secret else None
    if not secret:
        secret = secrets.token_urlsafe(32)
        logger.warning("FLUSSO_SESSION_SECRET is unset: sessions end when this process stops")
    app.state.viewer = ViewerContext(
        pool=pool, settings=settings,
        codec=SessionCodec(secret, settings.flusso_session_hours * 3600),
        limiter=LoginLimiter(settings.flusso_login_attempts_per_minute),
        verifier=PasswordVerifier(settings.flusso_login_verify_concurrency,
                                  checks_per_second=settings.flusso_login_checks_per_second),
        failures=FailureDelay(max_s=settings.flusso_login_delay_max_seconds),
        env=create_environment(),
        review_flags=review_flags(label.strip() for label in settings.flusso_review_labels.split(",") if label.strip()),
        scrubber=Scrubber(review_hash_key(settings, secret)),
        jobs=jobs if jobs is not None else JobBoard(),
    )
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    routers = [module.router for module in (login, overview, tickets, ticket, api)] + [api.docs_router]
    routers += [ingest.router, ingest.api_router]  # ingest health, provider only
    routers += [reviews.router, reviews.api_router]  # human review: queue, form, JSON API
    routers += [usage.router, usage.api_router, compare.router]  # usage and cost; two tickets compared
    routers += [alerts.router]  # alert rules, provider only
    routers += [sessions.router, sessions.api_router]  # customer sessions
    routers += [evaluators.router]  # online evaluators, provider only
    routers += [erasures.router, erasures.api_router]  # the erasure log, provider only
    routers += [datasets.router, datasets.api_router, experiments.router, experiments.api_router]
    for router in routers:
        app.include_router(router)
    note_machine_roots(app, routers)
