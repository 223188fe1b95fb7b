"""Interop fixtures: the fake OpenAI-compatible server, and a live collector with /v1/traces."""
from __future__ import annotations

import pytest

from tests.helpers import LiveServer, make_key
from tests.traces.helpers import trace_settings

from .helpers import FakeOpenAI


@pytest.fixture()
def fake_openai():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture()
def traces_server(db_dsn):
    server = LiveServer(db_dsn, trace_settings()).start()
    yield server
    server.stop()


@pytest.fixture()
def acme_ingest(db_dsn):
    return make_key(db_dsn, "acme")
