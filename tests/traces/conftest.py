"""Traces fixtures: a live server with /v1/traces configured, and tenant acme's ingest key."""
from __future__ import annotations

import pytest

from tests.helpers import LiveServer, make_key

from .helpers import trace_settings


@pytest.fixture()
def traces_server(db_dsn):
    server = LiveServer(db_dsn, trace_settings()).start()
    yield server
    server.stop()


@pytest.fixture()
def acme_ingest(db_dsn):
    return make_key(db_dsn, "acme")
