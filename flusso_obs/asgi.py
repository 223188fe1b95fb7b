"""ASGI entry for multi-process serving (`flusso-obs serve --workers N`): each uvicorn worker
process builds its own app, pool and metrics from the environment the parent prepared."""
from __future__ import annotations

import os

from fastapi import FastAPI

from config.server import ServerSettings, reveal

RESOLVED_DSN_ENV = "FLUSSO_RESOLVED_DATABASE_URL"  # set by the parent: DATABASE_URL or the embedded server


def create() -> FastAPI:
    from .server import create_app

    settings = ServerSettings()
    dsn = os.environ.get(RESOLVED_DSN_ENV) or reveal(settings.database_url)
    if not dsn:
        raise RuntimeError(f"{RESOLVED_DSN_ENV} or DATABASE_URL must be set for a worker process")
    # Every worker serves gRPC on the same port (SO_REUSEPORT: the kernel spreads the connections).
    return create_app(settings, dsn, grpc_port=settings.flusso_grpc_port, grpc_reuse_port=True)
