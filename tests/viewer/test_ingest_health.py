"""Ingest health: counters against a seeded run with known rejections, sent as real
requests to a real server; provider-only access; silence and median gaps; the page in Chromium."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.store.accounts.principals import create_api_key
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.ingest_health.reads import read_ingest_health
from config.server import ServerSettings
from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import LiveServer

from .helpers import ARTIFACTS, browser_login, create_accounts, login, provider_cookie, run_async

PB = "application/x-protobuf"
NO_PAGE = "there is no page at this address"  # what a non-provider gets: the page does not exist for them
SIGN_IN = "sign in, or send a read-scope API key in X-API-Key or Authorization: Bearer"
INGEST_KEY_REFUSED = "this API key has scope 'ingest'; the viewer API needs a 'read' (or 'review') key"


def send(url: str, path: str, body: bytes, key: str | None, ctype: str = PB) -> int:
    headers = {"Content-Type": ctype, **({"X-API-Key": key} if key else {})}
    req = urllib.request.Request(url + path, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def otlp(*logs) -> bytes:
    return make_request(*(make_record(log) for log in logs)).SerializeToString()


def seed_run(url: str, acme: str, acme_read: str, globex: str) -> None:
    """Known traffic. acme: 15 stored, 4 duplicates; rejected invalid 1, tenant_mismatch 1,
    undecodable 1, wrong_scope 1 (the last). globex: 2 stored. No key: missing_key 2, invalid_key 1."""
    first = otlp(*(make_log("acme", f"S-{i}") for i in range(4)))
    for body in (first, otlp(*(make_log("acme", f"S-{i}") for i in range(4, 8))),
                 otlp(*(make_log("acme", f"S-{i}") for i in range(8, 12)))):
        assert send(url, "/v1/logs", body, acme) == 200
    assert send(url, "/v1/logs", first, acme) == 200  # a replay: 4 duplicates
    bad = make_log("acme", "BAD")
    bad["outcome"]["status"] = "MAYBE"
    mixed = otlp(make_log("acme", "M-1"), bad, make_log("globex", "INTRUDER"), make_log("acme", "M-2"))
    assert send(url, "/v1/logs", mixed, acme) == 200  # partial success: 2 stored, 2 rejected
    assert send(url, "/v1/logs", b"\xff\xff\xff not protobuf", acme) == 400
    assert send(url, "/api/v1/logs", json.dumps(make_log("acme", "L-1")).encode(), acme, "application/json") == 200
    assert send(url, "/v1/logs", otlp(make_log("globex", "G-1"), make_log("globex", "G-2")), globex) == 200
    assert send(url, "/v1/logs", otlp(make_log("acme", "X")), None) == 401
    assert send(url, "/v1/logs", otlp(make_log("acme", "X")), None) == 401
    assert send(url, "/v1/logs", otlp(make_log("acme", "X")), "flk_not-a-real-key") == 401
    time.sleep(0.05)  # the last rejection is later than every other, also at the clock's resolution
    assert send(url, "/v1/logs", otlp(make_log("acme", "X")), acme_read) == 401  # wrong_scope


def get_json(url: str, key: str | None = None, cookie: str | None = None) -> tuple[int, dict]:
    headers = {**({"X-API-Key": key} if key else {}), **({"Cookie": cookie} if cookie else {})}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


async def _ingest_key(dsn: str, tenant: str) -> str:
    async with create_pool(dsn, max_size=1) as pool:
        return (await create_api_key(pool, tenant, "ingest")).secret


@pytest.fixture()
def seeded(db_dsn):
    accounts = create_accounts(db_dsn)
    globex = run_async(_ingest_key(db_dsn, "globex"))
    settings = ServerSettings(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32,
                              flusso_ingest_counters_flush_seconds=0.2)
    server = LiveServer(db_dsn, settings).start()
    try:
        seed_run(server.url, accounts["ingest_key"], accounts["read_key"], globex)
        yield server, accounts
    finally:
        server.stop()


def wait_for_health(url: str, cookie: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        status, data = get_json(url + "/api/v1/ingest-health", cookie=cookie)
        assert status == 200, data
        tenants = {t["client_id"]: t for t in data["tenants"]}
        if tenants.get("acme", {}).get("rejected", {}).get("24h") == 4 or time.monotonic() > deadline:
            return tenants
        time.sleep(0.2)


def test_counters_match_a_seeded_run_exactly(seeded, db_dsn):
    server, accounts = seeded
    tenants = wait_for_health(server.url, provider_cookie(server.url))
    acme, globex, nokey = tenants["acme"], tenants["globex"], tenants[""]
    for window in ("24h", "7d"):
        assert acme["accepted"][window] == 19 and acme["rejected"][window] == 4
        assert acme["rejected_by_reason"][window] == {"invalid": 1, "tenant_mismatch": 1, "undecodable": 1,
                                                      "wrong_scope": 1}
        assert globex["accepted"][window] == 2 and globex["rejected"][window] == 0
        assert nokey["rejected_by_reason"][window] == {"missing_key": 2, "invalid_key": 1}
        assert nokey["accepted"][window] == 0
    assert acme["last_rejection"]["reason"] == "wrong_scope"
    assert globex["last_rejection"] is None
    assert acme["silent"] is False and globex["silent"] is False and nokey["silent"] is False
    now = datetime.now(UTC)
    for t in (acme, globex):
        assert now - datetime.fromisoformat(t["last_seen"]) < timedelta(minutes=2)
        assert t["median_gap_s"] == 0.0 and t["silent_after_s"] == 3600.0
    assert len(acme["keys_in_use"]["24h"]) == 1 and len(globex["keys_in_use"]["7d"]) == 1  # the read key is not one
    with psycopg.connect(db_dsn) as conn:
        stored = dict(conn.execute("SELECT client_id, count(*) FROM workflow_logs GROUP BY 1").fetchall())
        acme_key_id = conn.execute("SELECT key_id FROM api_keys WHERE client_id = 'acme' AND scope = 'ingest'"
                                   ).fetchone()[0]
    assert stored == {"acme": 15, "globex": 2}  # the counters agree with what was stored
    assert acme["keys_in_use"]["24h"][0]["key_id"] == acme_key_id
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as resp:  # the same codes as /metrics
        metrics = resp.read().decode()
    for reason, n in acme["rejected_by_reason"]["7d"].items():
        assert f'flusso_logs_rejected_total{{client_id="acme",reason="{reason}"}} {n}.0' in metrics


def test_only_a_provider_sees_ingest_health(seeded):
    server, accounts = seeded
    import httpx

    api = server.url + "/api/v1/ingest-health"
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        assert client.get("/ingest").status_code == 303  # to the login page
        anonymous = client.get("/api/v1/ingest-health")
        assert (anonymous.status_code, anonymous.json()) == (401, {"detail": SIGN_IN}), anonymous.text
        login(client, "acme@example.com")
        page = client.get("/ingest")
        assert page.status_code == 404 and "/ingest" not in page.text.split("<main>")[0]  # no nav link either
        assert NO_PAGE in page.text
        as_client = client.get("/api/v1/ingest-health")
        assert (as_client.status_code, as_client.json()) == (404, {"detail": NO_PAGE}), as_client.text
    # A tenant's read key is a valid credential of the API, but not a provider's: no such page.
    assert get_json(api, key=accounts["read_key"]) == (404, {"detail": NO_PAGE})
    # An ingest key is no credential of the viewer API at all: refused before any page is looked up.
    assert get_json(api, key=accounts["ingest_key"]) == (401, {"detail": INGEST_KEY_REFUSED})


def test_silence_follows_each_tenants_median_gap(db_dsn):
    """acme sends every 3 h (median gap 3 h: silent after 9 h), last 5 h ago: not silent; globex
    sends bursts every minute (median 0: silent after 1 h), last 2 h ago: silent; initech never."""
    create_accounts(db_dsn)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    rows = [("acme", now - timedelta(hours=5 + 3 * i), "stored", 1) for i in range(10)]
    rows += [("globex", now - timedelta(hours=2, minutes=i), "stored", 5) for i in range(30)]
    rows += [("acme", now - timedelta(days=8), "invalid", 7)]  # outside both windows
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES ('initech') ON CONFLICT DO NOTHING")
        for tenant, at, reason, n in rows:
            conn.execute("INSERT INTO ingest_counts VALUES (%s, date_trunc('minute', %s::timestamptz), %s, %s, %s)",
                         (tenant, at, reason, n, at))

    async def read():
        async with create_pool(db_dsn, max_size=2) as pool:
            with pytest.raises(PermissionError):
                await read_ingest_health(pool, Scope.tenant("acme"), now=now)
            return {h.client_id: h for h in await read_ingest_health(pool, Scope.provider(), now=now)}

    health = run_async(read())
    acme, globex, initech = health["acme"], health["globex"], health["initech"]
    assert acme.median_gap_s == 10800.0 and acme.silent_after_s == 32400.0 and not acme.silent
    assert acme.accepted == {"24h": 7, "7d": 10} and acme.rejected["7d"] == 0  # 5, 8, ... 23 h ago in 24 h
    assert globex.median_gap_s == 0.0 and globex.silent_after_s == 3600.0 and globex.silent
    assert initech.last_seen is None and initech.silent


@pytest.mark.browser
def test_ingest_page_in_the_browser_shows_the_seeded_figures(seeded, viewer_page):
    server, _ = seeded
    tenants = wait_for_health(server.url, provider_cookie(server.url))
    browser_login(viewer_page, server.url, "provider@example.com")
    viewer_page.click("nav >> text=Ingest")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{server.url}/ingest"
    row = viewer_page.locator("tr[data-tenant=acme]")
    assert row.locator("[data-field=accepted-24h]").text_content() == str(tenants["acme"]["accepted"]["24h"]) == "19"
    assert row.locator("[data-field=rejected-7d]").text_content() == "4"
    assert row.locator("[data-field=state]").text_content().strip() == "sending"
    assert "wrong_scope" in row.locator("[data-field=last-rejection]").text_content()
    reasons = {el.get_attribute("data-reason"): el.text_content() for el in row.locator(".reason").all()}
    assert reasons == {"invalid": "invalid 1", "tenant_mismatch": "tenant_mismatch 1",
                       "undecodable": "undecodable 1", "wrong_scope": "wrong_scope 1"}
    nokey = viewer_page.locator('tr[data-tenant=""]')
    assert nokey.locator("[data-field=rejected-24h]").text_content() == "3"
    assert viewer_page.locator("tr[data-tenant=globex] [data-field=accepted-7d]").text_content() == "2"
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-ingest.png"), full_page=True)
    assert not viewer_page.console_errors, viewer_page.console_errors
