"""Interop with stock OpenTelemetry senders, and behaviour when PostgreSQL goes away."""
import json
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from tests.collector.helpers import make_log
from tests.helpers import LiveServer, make_key, metric, run_async, wait_until


def emit_with_plain_sdk(url: str, key: str, logs: list[dict], timeout: float = 10) -> None:
    """A stock OTel SDK LoggerProvider + OTLPLogExporter: no bridge code involved."""
    exporter = OTLPLogExporter(endpoint=url + "/v1/logs", headers={"X-API-Key": key},
                               compression=Compression.Gzip, timeout=timeout)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("interop-test")
    for log in logs:
        logger.emit(body=json.dumps(log), event_name="flusso.workflow_log", severity_number=SeverityNumber.INFO,
                    attributes={"flusso.ticket_id": log["ticket_info"]["ticket_id"]})
    provider.shutdown()


def rows(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT ticket_id FROM workflow_logs ORDER BY ticket_id").fetchall()


def test_plain_otel_sdk_exporter_delivers(live_server, db_dsn):
    key = make_key(db_dsn, "acme")
    emit_with_plain_sdk(live_server.url, key, [make_log(ticket_id="SDK-1"), make_log(ticket_id="SDK-2")])
    assert rows(db_dsn) == [("SDK-1",), ("SDK-2",)]


def test_database_down_gives_503_then_the_exporter_retries_and_delivers():
    from collector_api.store.core.migrate import apply_migrations
    from flusso_obs.embedded import start_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="flusso-outage-"))
    handle = start_embedded(data_dir)
    dsn = handle.get_uri("postgres")
    apply_migrations(dsn)
    key = make_key(dsn, "acme")
    server = LiveServer(dsn).start()
    try:
        emit_with_plain_sdk(server.url, key, [make_log(ticket_id="BEFORE")])
        handle.cleanup()  # PostgreSQL stops

        import urllib.error
        import urllib.request
        req = urllib.request.Request(server.url + "/v1/logs", data=b"", method="POST",
                                     headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("expected 503")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
            assert exc.headers["Retry-After"]

        result = {}
        sender = threading.Thread(target=lambda: result.setdefault(
            "r", emit_with_plain_sdk(server.url, key, [make_log(ticket_id="DURING")], timeout=30)))
        sender.start()
        # the exporter's first attempt was refused too (503 number two) before PostgreSQL comes back
        refused = lambda: metric(server.url, "flusso_request_seconds_count", endpoint="otlp", status="503")  # noqa: E731
        # at least twice: a fast retry may land between two polls (== 2 then never holds)
        assert wait_until(lambda: refused() >= 2, 20), "the exporter did not try during the outage"
        handle = start_embedded(data_dir)  # back up: the exporter's retry lands
        sender.join(timeout=40)
        assert not sender.is_alive()
        deadline = time.monotonic() + 10
        while rows(dsn) != [("BEFORE",), ("DURING",)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rows(dsn) == [("BEFORE",), ("DURING",)]
    finally:
        server.stop()
        handle.cleanup()


def test_rls_holds_for_the_application_role(db_dsn, client, acme_key):
    """Connected as the superuser but scoped through the app role: tenant A sees no row of B."""

    from collector_api.store.core.db import Scope, create_pool, scoped_transaction
    from tests.collector.helpers import make_record, make_request

    globex_key = make_key(db_dsn, "globex")
    for key, cid in ((acme_key, "acme"), (globex_key, "globex")):
        r = client.post("/v1/logs", content=make_request(make_record(make_log(client_id=cid))).SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})
        assert r.status_code == 200

    async def visible(scope):
        async with create_pool(db_dsn) as pool, scoped_transaction(pool, scope) as conn:
            # deliberately NO tenant filter: only RLS stands between the tenants here
            cur = await conn.execute("SELECT DISTINCT client_id FROM workflow_logs ORDER BY 1")
            return [r["client_id"] for r in await cur.fetchall()]

    assert run_async(visible(Scope.tenant("acme"))) == ["acme"]
    assert run_async(visible(Scope.tenant("globex"))) == ["globex"]
    assert run_async(visible(Scope.provider())) == ["acme", "globex"]

    async def write_other_tenant():
        async with create_pool(db_dsn) as pool, scoped_transaction(pool, Scope.tenant("acme")) as conn:
            await conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id,"
                               " log_data) VALUES ('globex', 'x', 'SUCCESS', now(), 'abc', '{}')")

    import pytest
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run_async(write_other_tenant())
