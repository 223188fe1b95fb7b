"""A live collector serving OTLP/gRPC on 127.0.0.1, real PostgreSQL, and gRPC client helpers."""
from __future__ import annotations

import grpc
import pytest

from tests.helpers import make_key
from tests.traces.helpers import trace_settings

from .helpers import (
    GrpcLiveServer,
)


@pytest.fixture()
def grpc_server(db_dsn):
    server = GrpcLiveServer(db_dsn, trace_settings()).start()
    yield server
    server.stop()


@pytest.fixture()
def channel(grpc_server):
    with grpc.insecure_channel(grpc_server.target) as ch:
        yield ch


@pytest.fixture()
def acme_key(db_dsn):
    return make_key(db_dsn, "acme")


