"""A live server with /v1/traces configured and a bridge configured against it: both paths of
the privacy policy end to end, real PostgreSQL, real OTel SDK, real HTTP on 127.0.0.1."""
from __future__ import annotations

import pytest

import otel_bridge
from config.bridge import BridgeSettings
from tests.helpers import LiveServer, make_key
from tests.traces.helpers import trace_settings

BRIDGE_ENV = ("LOG_COLLECTOR_URL", "LOG_COLLECTOR_API_KEY", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
              "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "CLIENT_ID", "ENVIRONMENT",
              "PII_HASH_KEY", "FLUSSO_CONTENT")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in BRIDGE_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    otel_bridge.shutdown(timeout_seconds=2.0)


@pytest.fixture()
def server(db_dsn):
    live = LiveServer(db_dsn, trace_settings()).start()
    yield live
    live.stop()


@pytest.fixture()
def ingest_key(db_dsn):
    return make_key(db_dsn, "acme")


def bridge_settings(**kw) -> BridgeSettings:
    base = dict(environment="test", pii_hash_key="privacy-test-key-0123456789", export_timeout_seconds=3.0,
                log_batch_delay_millis=20, client_id="acme")
    base.update(kw)
    return BridgeSettings(_env_file=None, **base)


@pytest.fixture()
def bridge_to(server, ingest_key):
    """configure(...) of the bridge against the live server; returns the settings' overrides hook."""
    def configure(**kw):
        return otel_bridge.configure(bridge_settings(**kw), endpoint=server.url, api_key=ingest_key)
    return configure
