"""POST /api/v1/erasures end to end on a real PostgreSQL: what is erased, the receipt, idempotency,
the tombstones that refuse a replay, and every hostile caller."""
from __future__ import annotations

import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from collector_api.contract.receipts import verify
from flusso_obs.server import create_app
from otel_bridge.pii import Redactor
from tests.helpers import make_key

from .helpers import PII_KEY, RECEIPT_KEY, customer_log, erase_settings, post_log, request_id


@pytest.fixture()
def app_client(db_dsn):
    with TestClient(create_app(erase_settings(), db_dsn)) as c:
        yield c


def _count(dsn: str, client: str, ticket: str | None = None) -> int:
    with psycopg.connect(dsn) as conn:
        if ticket is None:
            return conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = %s", (client,)).fetchone()[0]
        return conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = %s AND ticket_id = %s",
                            (client, ticket)).fetchone()[0]


def test_erase_by_ticket_ids_returns_a_signed_receipt_and_touches_no_other_tenant(app_client, db_dsn):
    acme, globex = make_key(db_dsn, "acme"), make_key(db_dsn, "globex")
    eraser = make_key(db_dsn, "acme", "erase")
    for ticket in ("T-1", "T-2", "T-3"):
        assert post_log(app_client, acme, customer_log("acme", ticket)).status_code == 200
    assert post_log(app_client, globex, customer_log("globex", "T-1")).status_code == 200
    rid = request_id()
    r = app_client.post("/api/v1/erasures", json={"request_id": rid, "ticket_ids": ["T-1", "T-2", "T-404"]},
                        headers={"X-API-Key": eraser})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["counts"]["workflow_logs"] == 2 and receipt["status"] == "done"
    assert receipt["client_id"] == "acme" and receipt["asked"]["ticket_ids"] == ["T-1", "T-2", "T-404"]
    assert verify(receipt, RECEIPT_KEY) and not verify(receipt, "another-key-" + "k" * 40)
    tampered = {**receipt, "counts": {**receipt["counts"], "workflow_logs": 1}}
    assert not verify(tampered, RECEIPT_KEY)
    assert _count(db_dsn, "acme") == 1 and _count(db_dsn, "globex", "T-1") == 1
    # The same request again: the same receipt, nothing erased twice.
    again = app_client.post("/api/v1/erasures", json={"request_id": rid, "ticket_ids": ["T-404", "T-2", "T-1"]},
                            headers={"X-API-Key": eraser})
    assert again.status_code == 200 and again.json() == receipt
    fetched = app_client.get(f"/api/v1/erasures/{rid}", headers={"X-API-Key": eraser})
    assert fetched.status_code == 200 and fetched.json() == receipt
    # The same id for something else: refused, named.
    other = app_client.post("/api/v1/erasures", json={"request_id": rid, "ticket_ids": ["T-3"]},
                            headers={"X-API-Key": eraser})
    assert other.status_code == 409 and "request_id" in other.json()["detail"]


def test_a_replayed_or_late_log_of_an_erased_ticket_is_refused_not_stored(app_client, db_dsn):
    acme, eraser = make_key(db_dsn, "acme"), make_key(db_dsn, "acme", "erase")
    log = customer_log("acme", "T-9")
    assert post_log(app_client, acme, log, idempotency="delivery-9").status_code == 200
    r = app_client.post("/api/v1/erasures", json={"request_id": request_id(), "ticket_ids": ["T-9"]},
                        headers={"X-API-Key": eraser})
    assert r.json()["counts"]["workflow_logs"] == 1
    replay = post_log(app_client, acme, log, idempotency="delivery-9")
    assert replay.status_code == 410 and "erased" in replay.json()["detail"]
    late = post_log(app_client, acme, customer_log("acme", "T-9"))  # a new delivery of the same ticket
    assert late.status_code == 410
    assert _count(db_dsn, "acme", "T-9") == 0
    globex = make_key(db_dsn, "globex")  # the tombstone is acme's only
    assert post_log(app_client, globex, customer_log("globex", "T-9")).status_code == 200


def test_hostile_callers_are_refused_with_a_clear_4xx(app_client, db_dsn):
    acme = make_key(db_dsn, "acme")
    assert post_log(app_client, acme, customer_log("acme", "T-1")).status_code == 200
    body = {"request_id": request_id(), "ticket_ids": ["T-1"]}
    cases = {
        "no key": (app_client.post("/api/v1/erasures", json=body), 401),
        "bad key": (app_client.post("/api/v1/erasures", json=body, headers={"X-API-Key": "fo_nope"}), 401),
        "ingest key": (app_client.post("/api/v1/erasures", json=body, headers={"X-API-Key": acme}), 403),
        "read key": (app_client.post("/api/v1/erasures", json=body,
                                     headers={"X-API-Key": make_key(db_dsn, "acme", "read")}), 403),
        "review key": (app_client.post("/api/v1/erasures", json=body,
                                       headers={"X-API-Key": make_key(db_dsn, "acme", "review")}), 403),
    }
    eraser = make_key(db_dsn, "acme", "erase")
    bad = {"not JSON": b"\xff{", "a list": b"[1]", "no request id": json.dumps({"ticket_ids": ["a"]}).encode(),
           "nothing asked": json.dumps({"request_id": "r1"}).encode(),
           "bad trace id": json.dumps({"request_id": "r1", "trace_ids": ["xyz"]}).encode(),
           "bad token": json.dumps({"request_id": "r1", "tokens": ["ann@example.com"]}).encode(),
           "unknown identifier": json.dumps({"request_id": "r1", "identifiers": {"ssn": ["1"]}}).encode(),
           "unknown field": json.dumps({"request_id": "r1", "ticket_ids": ["a"], "client_id": "globex"}).encode(),
           "NUL in id": json.dumps({"request_id": "r1", "ticket_ids": ["a\x00"]}).encode(),
           "deep": b"[" * 5000 + b"]" * 5000}
    for name, content in bad.items():
        cases[name] = (app_client.post("/api/v1/erasures", content=content, headers={
            "X-API-Key": eraser, "Content-Type": "application/json"}), 400)
    wrong = {n: (r.status_code, r.text[:200]) for n, (r, want) in cases.items() if r.status_code != want}
    assert not wrong, wrong
    assert "scope" in cases["read key"][0].json()["detail"]
    assert _count(db_dsn, "acme", "T-1") == 1  # nothing was erased by any of them


def test_an_erase_key_reads_nothing_and_another_tenants_ids_erase_nothing(app_client, db_dsn):
    globex = make_key(db_dsn, "globex")
    log = customer_log("globex", "G-1", email="gina@example.com")
    token = Redactor(PII_KEY).token("email", "gina@example.com")  # globex's customer's token
    assert post_log(app_client, globex, log).status_code == 200
    with psycopg.connect(db_dsn) as conn:
        trace = conn.execute("SELECT trace_id FROM workflow_logs WHERE ticket_id = 'G-1'").fetchone()[0]
    eraser = make_key(db_dsn, "acme", "erase")
    assert app_client.get("/api/v1/tickets", headers={"X-API-Key": eraser}).status_code in (401, 403)
    r = app_client.post("/api/v1/erasures", json={"request_id": request_id(), "ticket_ids": ["G-1"],
                                                  "trace_ids": [trace], "tokens": [token],
                                                  "identifiers": {"email": ["gina@example.com"]}},
                        headers={"X-API-Key": eraser})
    assert r.status_code == 200 and r.json()["counts"]["workflow_logs"] == 0
    assert _count(db_dsn, "globex", "G-1") == 1
    # Another tenant's receipt is not found with acme's key.
    rid = request_id()
    assert app_client.post("/api/v1/erasures", json={"request_id": rid, "ticket_ids": ["x"]},
                           headers={"X-API-Key": make_key(db_dsn, "globex", "erase")}).status_code == 200
    assert app_client.get(f"/api/v1/erasures/{rid}", headers={"X-API-Key": eraser}).status_code == 404


def test_without_a_receipt_key_erasure_is_refused_naming_the_setting(db_dsn):
    with TestClient(create_app(erase_settings(flusso_receipt_key=None), db_dsn)) as c:
        r = c.post("/api/v1/erasures", json={"request_id": "r1", "ticket_ids": ["T-1"]},
                   headers={"X-API-Key": make_key(db_dsn, "acme", "erase")})
    assert r.status_code == 501 and "FLUSSO_RECEIPT_KEY" in r.json()["detail"]
