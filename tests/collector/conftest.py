import asyncio

import pytest
from fastapi.testclient import TestClient

from collector_api.store.accounts.principals import create_api_key
from collector_api.store.core.db import create_pool
from config.server import ServerSettings
from flusso_obs.server import create_app


def make_key(dsn: str, client_id: str, scope: str = "ingest") -> str:
    async def go():
        async with create_pool(dsn) as pool:
            return (await create_api_key(pool, client_id, scope)).secret
    return asyncio.run(go())


@pytest.fixture()
def settings():
    return ServerSettings(_env_file=None)


@pytest.fixture()
def client(db_dsn, settings):
    with TestClient(create_app(settings, db_dsn)) as c:
        yield c


@pytest.fixture()
def acme_key(db_dsn):
    return make_key(db_dsn, "acme")
