"""POST /api/v1/logs: the seed's hand-written shipper keeps working."""
import json

import psycopg

from tests.collector.helpers import make_log
from tests.helpers import make_key


def legacy_log(**kw):
    log = make_log(**kw)
    for key in ("schema_version", "trace_id"):
        log.pop(key)
    log["trace"].pop("spans")
    return log


def test_legacy_log_is_stored_with_its_id(client, acme_key, db_dsn):
    r = client.post("/api/v1/logs", json=legacy_log(), headers={"X-API-Key": acme_key,
                                                                "User-Agent": "Flusso-Workflow/v1.0"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "stored" and isinstance(body["id"], int) and body["duplicate"] is False
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT id, client_id FROM workflow_logs").fetchone() == (body["id"], "acme")


def test_legacy_replay_is_idempotent_by_content(client, acme_key, db_dsn):
    log = legacy_log()
    first = client.post("/api/v1/logs", json=log, headers={"X-API-Key": acme_key}).json()
    second = client.post("/api/v1/logs", json=log, headers={"X-API-Key": acme_key}).json()
    assert second == {**first, "status": "duplicate", "duplicate": True}


def test_legacy_idempotency_key_header(client, acme_key, db_dsn):
    a, b = legacy_log(ticket_id="X"), legacy_log(ticket_id="X")
    b["ticket_info"]["executed_at"] = a["ticket_info"]["executed_at"]
    b["metrics"]["react_iterations"] = 7  # a changed retry of the same delivery
    h = {"X-API-Key": acme_key, "Idempotency-Key": "delivery-42"}
    assert client.post("/api/v1/logs", json=a, headers=h).json()["duplicate"] is False
    assert client.post("/api/v1/logs", json=b, headers=h).json()["duplicate"] is True


def test_legacy_invalid_log_names_the_field(client, acme_key):
    log = legacy_log()
    del log["ticket_info"]["ticket_id"]
    r = client.post("/api/v1/logs", json=log, headers={"X-API-Key": acme_key})
    assert r.status_code == 422
    assert "ticket_id" in r.json()["detail"]


def test_legacy_bad_json_and_wrong_tenant(client, acme_key):
    r = client.post("/api/v1/logs", content=b"{oops",
                    headers={"X-API-Key": acme_key, "Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    r = client.post("/api/v1/logs", json=legacy_log(client_id="globex"), headers={"X-API-Key": acme_key})
    assert r.status_code == 403 and "tenant" in r.json()["detail"]
    r = client.post("/api/v1/logs", json=legacy_log())
    assert r.status_code == 401


def test_health_and_ready(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_metrics_on_loopback_count_stored_and_rejected(live_server, db_dsn):
    import httpx

    key = make_key(db_dsn, "acme")
    with httpx.Client(base_url=live_server.url) as http:
        assert http.post("/api/v1/logs", json=legacy_log(), headers={"X-API-Key": key}).status_code == 200
        assert http.post("/api/v1/logs", json=legacy_log()).status_code == 401
        text = http.get("/metrics").text
    assert 'flusso_logs_stored_total{client_id="acme"} 1.0' in text
    assert 'flusso_logs_rejected_total{client_id="",reason="missing_key"} 1.0' in text
    assert 'flusso_request_seconds_count{endpoint="legacy",status="200"} 1.0' in text
    assert 'flusso_request_seconds_count{endpoint="legacy",status="401"} 1.0' in text


def test_metrics_token_is_required_when_set(db_dsn):
    from fastapi.testclient import TestClient

    from config.server import ServerSettings
    from flusso_obs.server import create_app

    settings = ServerSettings(_env_file=None, flusso_metrics_token="s3cret-token")
    with TestClient(create_app(settings, db_dsn)) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200


def test_metrics_refused_to_remote_peer_without_token(client):
    assert client.get("/metrics").status_code == 403  # TestClient's peer is "testclient", not loopback


def test_legacy_lone_surrogates_and_nul_are_stored_cleaned(client, acme_key, db_dsn):
    log = legacy_log(ticket_id="S-\ud800")
    log["trace"]["note"] = "a\u0000b\udfff"
    body = json.dumps(log).encode()  # ensure_ascii: the surrogates travel as \\ud800 escapes
    r = client.post("/api/v1/logs", content=body, headers={"X-API-Key": acme_key, "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    with psycopg.connect(db_dsn) as conn:
        ticket, note = conn.execute("SELECT ticket_id, log_data->'trace'->>'note' FROM workflow_logs").fetchone()
    assert ticket == "S-\ufffd" and note == "ab\ufffd"


def test_metrics_relayed_by_a_local_proxy_are_not_loopback(live_server):
    import httpx

    with httpx.Client(base_url=live_server.url) as http:
        assert http.get("/metrics").status_code == 200
        assert http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
        assert http.get("/metrics", headers={"Forwarded": "for=203.0.113.9"}).status_code == 403


def test_forwarded_headers_are_trusted_only_from_configured_proxies():
    from config.server import ServerSettings
    from flusso_obs.runner import _proxy_options

    assert _proxy_options(ServerSettings(_env_file=None)) == {"proxy_headers": False}
    assert _proxy_options(ServerSettings(_env_file=None, flusso_forwarded_allow_ips="127.0.0.1")) == {
        "proxy_headers": True, "forwarded_allow_ips": "127.0.0.1"}
