"""A live server on 127.0.0.1 over a real PostgreSQL database, with real keys and a real session,
shared by one module's fuzz cases."""
from __future__ import annotations

import httpx
import pytest

from config.server import ServerSettings
from tests.helpers import LiveServer, free_port, run_async


@pytest.fixture(scope="module")
def fuzz_db(module_db_dsn):
    from tests.viewer.helpers import create_accounts, standard_logs, store_logs

    accounts = create_accounts(module_db_dsn)
    store_logs(module_db_dsn, standard_logs())
    return module_db_dsn, accounts


class Credentials:
    """A key of every scope (`keys[scope]`) of tenant acme and a provider's session cookie."""

    def __init__(self, keys: dict[str, str], session_cookie: str):
        self.keys, self.session_cookie = keys, session_cookie
        self.ingest, self.read = keys["ingest"], keys["read"]


def _keys(dsn: str) -> dict[str, str]:
    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool

    async def go():
        async with create_pool(dsn) as pool:
            return {scope: (await create_api_key(pool, "acme", scope)).secret for scope in ("ingest", "read", "review")}
    return run_async(go())


@pytest.fixture(scope="module")
def fuzz_server(fuzz_db):
    """(server, Credentials): an ingest key and a read key of tenant acme, and a provider session.
    The server also serves OTLP/gRPC on `server.grpc_port`."""
    from tests.viewer.helpers import PASSWORD

    dsn, accounts = fuzz_db
    settings = ServerSettings(_env_file=None, flusso_session_secret="fuzz-" + "f" * 40,
                              flusso_pii_hash_key="fuzz-pii-" + "k" * 40,  # /v1/traces is served, not 501
                              flusso_login_attempts_per_minute=10_000, flusso_tenant_rate_limit_per_s=0)
    grpc_port = free_port()
    server = LiveServer(dsn, settings, grpc_port=grpc_port).start()
    keys = _keys(dsn)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        r = client.post("/login", data={"email": "provider@example.com", "password": PASSWORD,
                                         "csrf_token": token, "next": "/"})
        assert r.status_code == 303, r.text[:300]
        cookie = client.cookies["flusso_session"]
    server.grpc_port = grpc_port
    yield server, Credentials(keys, cookie)
    server.stop()


@pytest.fixture(scope="module")
def grpc_fuzz(fuzz_server):
    """(server, an open gRPC channel to its OTLP/gRPC port, the keys of tenant acme by scope)."""
    import grpc

    server, creds = fuzz_server
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield server, channel, creds.keys
