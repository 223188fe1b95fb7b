"""Inputs a reviewer found that gave 500s: odd ids, dates at the ends of time, deep span chains."""
import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.collector.conftest import make_key as _make_key


def make_key(dsn, client, scope="ingest"):
    """In a thread: a session-wide Playwright loop may own this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_make_key, dsn, client, scope).result()
from tests.collector.helpers import make_log, make_record, make_request


@pytest.fixture()
def reader(db_dsn):
    settings = ServerSettings(_env_file=None, flusso_session_secret="s" * 40)
    with TestClient(create_app(settings, db_dsn)) as client:
        client.headers["X-API-Key"] = make_key(db_dsn, "acme", scope="read")
        yield client


@pytest.mark.parametrize("url", ["/api/v1/tickets/²", "/api/v1/tickets/١٢",
                                 "/api/v1/tickets?end=9999-12-31", "/api/v1/tickets?start=0001-01-01T00:00:00+05:00",
                                 "/api/v1/stats?end=9999-12-31", "/api/v1/stats?start=0001-01-01T00:00:00%2B05:00",
                                 "/api/v1/tickets/export.csv?end=9999-12-31"])
def test_odd_inputs_are_4xx_not_500(reader, url):
    r = reader.get(url)
    assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:200])


def test_a_deep_chain_of_nested_spans_renders(reader, db_dsn):
    log = make_log(ticket_id="DEEP")
    spans = [{"name": f"s{i}", "kind": "chain", "span_id": f"{i + 1:016x}",
              "parent_span_id": f"{i:016x}" if i else None, "start_offset_ms": float(i), "duration_ms": 1.0,
              "status": "OK", "error": None, "attributes": {}} for i in range(1900)]
    log["trace"]["spans"] = spans
    ingest = make_key(db_dsn, "acme")
    r = reader.post("/v1/logs", content=make_request(make_record(log)).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-API-Key": ingest})
    assert r.status_code == 200, r.content[:200]
    with psycopg.connect(db_dsn) as conn:
        log_id = conn.execute("SELECT id FROM workflow_logs WHERE ticket_id = 'DEEP'").fetchone()[0]
    assert reader.get(f"/api/v1/tickets/{log_id}").status_code == 200

    from viewer.views.ticket import build_waterfall
    rows = build_waterfall(json.loads(json.dumps(spans)))
    assert len(rows) == 1900 and rows[0]["name"] == "s0" and rows[-1]["name"] == "s1899"
