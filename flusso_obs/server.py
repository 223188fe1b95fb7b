"""One process serving the collector and the viewer: `create_app(settings, dsn)`."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

import psycopg
from fastapi import FastAPI

from collector_api.app import install_collector
from collector_api.state import CollectorState
from collector_api.store.db import create_pool
from collector_api.store.partitions import ensure_partitions
from config.server import ServerSettings
from viewer.app import install_viewer

logger = logging.getLogger(__name__)

PARTITION_INTERVAL_S = 3600


def maintain_partitions(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return ensure_partitions(conn)


async def _partition_loop(dsn: str) -> None:
    while True:
        await asyncio.sleep(PARTITION_INTERVAL_S)
        try:
            await asyncio.to_thread(maintain_partitions, dsn)
        except psycopg.Error as exc:  # retried next hour; the DEFAULT partition takes rows meanwhile
            logger.warning("partition maintenance failed: %s", exc)


def create_app(settings: ServerSettings, dsn: str) -> FastAPI:
    """The collector + viewer app. Nothing connects until the app starts (lifespan)."""
    pool = create_pool(dsn, max_size=settings.flusso_db_pool_size)

    state = CollectorState(settings=settings, pool=pool)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await pool.open(wait=False)
        try:
            await asyncio.to_thread(maintain_partitions, dsn)
        except psycopg.Error as exc:
            logger.warning("partition maintenance at start failed (will retry hourly): %s", exc)
        task = asyncio.create_task(_partition_loop(dsn))
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await pool.close()
            state.metrics.process_exiting()

    app = FastAPI(title="flusso-obs", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_collector(app, state)
    install_viewer(app, pool, settings)
    return app
