"""Human review: the form, the JSON API, tenant isolation, scrubbing, filters, export, retention."""
from __future__ import annotations

import json
from datetime import date

import psycopg
import pytest

from collector_api.store.accounts.principals import create_api_key
from collector_api.store.core.db import create_pool

from .helpers import csrf_token as _csrf
from .helpers import login, run_async
from .helpers import post_review as _review


def _key(dsn: str, client_id: str, scope: str) -> str:
    async def go():
        async with create_pool(dsn, max_size=1) as pool:
            return (await create_api_key(pool, client_id, scope)).secret
    return run_async(go())


def _stored(dsn: str, sql: str, *params):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def test_form_records_reviews_append_only_and_shows_the_history(app_client, loaded_db):
    dsn, _, ids = loaded_db
    login(app_client, "provider@example.com")
    before = _stored(dsn, "SELECT log_data, created_at FROM workflow_logs WHERE id = %s", ids["A-2"])
    done = _review(app_client, ids["A-2"], verdict="incorrect", flags=["hallucination", "tone"],
                   note="made up a refund")
    assert done.status_code == 303 and done.headers["location"] == f"/tickets/{ids['A-2']}#review"
    done = _review(app_client, ids["A-2"], verdict="needs_work", corrected_draft="Hello, your order ships today.")
    assert done.status_code == 303
    page = app_client.get(f"/tickets/{ids['A-2']}").text
    assert 'id="review-verdict">needs work<' in page and "made up a refund" in page and "provider@example.com" in page
    history = app_client.get(f"/api/v1/tickets/{ids['A-2']}/reviews").json()
    assert history["verdict"] == "needs_work"
    assert [r["verdict"] for r in history["reviews"]] == ["needs_work", "incorrect"]
    assert history["reviews"][1]["flags"] == ["hallucination", "tone"]
    assert all(r["author"] == "provider@example.com" and r["author_kind"] == "user" for r in history["reviews"])
    assert _stored(dsn, "SELECT log_data, created_at FROM workflow_logs WHERE id = %s", ids["A-2"]) == before
    # append-only: the application role may not change or delete a review
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SET ROLE flusso_app")
        conn.execute("UPDATE ticket_reviews SET verdict = 'correct'")


def test_form_needs_csrf_and_names_bad_fields(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    forged = app_client.post(f"/tickets/{ids['A-1']}/reviews", data={"verdict": "correct", "csrf_token": "x"})
    assert forged.status_code == 400 and "csrf_token" in forged.text
    for fields, field in (({"verdict": "great"}, "verdict"), ({"flags": ["sarcasm"]}, "flags"),
                          ({"note": "x" * 10_001}, "note")):
        response = _review(app_client, ids["A-1"], **fields)
        assert response.status_code == 400 and f"{field}:" in response.text, (fields, response.text[:200])
    assert _review(app_client, 999_999_999, verdict="correct").status_code == 404
    assert app_client.get(f"/api/v1/tickets/{ids['A-1']}/reviews").json()["reviews"] == []


def test_a_client_reviews_only_its_own_tenant(app_client, loaded_db):
    dsn, _, ids = loaded_db
    login(app_client, "acme@example.com")
    token = _csrf(app_client, f"/tickets/{ids['A-1']}")
    response = app_client.post(f"/tickets/{ids['G-1']}/reviews", data={"csrf_token": token, "verdict": "incorrect"})
    assert response.status_code == 404 and "G-1" not in response.text
    assert app_client.get(f"/api/v1/tickets/{ids['G-1']}/reviews").status_code == 404
    assert _stored(dsn, "SELECT count(*) FROM ticket_reviews")[0][0] == 0
    assert _review(app_client, ids["A-1"], verdict="correct").status_code == 303
    # the same statements as another tenant see nothing, even without their own filter (RLS)
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT set_config('role', 'flusso_app', false), set_config('flusso.tenant', 'globex', false)")
        assert conn.execute("SELECT count(*) FROM ticket_reviews").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ticket_review_state").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO ticket_reviews (client_id, log_id, executed_at, verdict, author, author_kind)"
                         " VALUES ('acme', 1, now(), 'correct', 'x', 'user')")


HOSTILE = ("Customer jane.doe@example.com called from +44 20 7946 0958, card 4111 1111 1111 1111,"
           " IBAN GB82WEST12345698765432, key sk-abcdefghijklmnopqrstuvwx <script>alert(1)</script>")
RAW = ("jane.doe@example.com", "7946 0958", "4111 1111 1111 1111", "GB82WEST12345698765432",
       "sk-abcdefghijklmnopqrstuvwx")


def test_notes_and_drafts_are_scrubbed_before_they_are_stored(app_client, loaded_db):
    dsn, _, ids = loaded_db
    login(app_client, "provider@example.com")
    done = _review(app_client, ids["A-3"], verdict="incorrect", note=HOSTILE, corrected_draft=HOSTILE)
    assert done.status_code == 303
    key = _key(dsn, "acme", "review")
    posted = app_client.post(f"/api/v1/tickets/{ids['A-3']}/reviews", headers={"X-API-Key": key},
                             json={"verdict": "needs_work", "note": HOSTILE, "corrected_draft": HOSTILE})
    assert posted.status_code == 201
    stored = _stored(dsn, "SELECT note, corrected_draft FROM ticket_reviews UNION ALL"
                          " SELECT corrected_draft, corrected_draft FROM ticket_review_state")
    assert len(stored) == 3
    for text in (t for row in stored for t in row):
        assert not any(raw in text for raw in RAW), text
        assert "[email:" in text and "[card:" in text
    page = app_client.get(f"/tickets/{ids['A-3']}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_api_review_key_posts_and_read_keys_stay_read_only(app_client, loaded_db):
    dsn, accounts, ids = loaded_db
    review_key = _key(dsn, "acme", "review")
    url = f"/api/v1/tickets/{ids['A-4']}/reviews"
    read = app_client.post(url, headers={"X-API-Key": accounts["read_key"]}, json={"verdict": "correct"})
    assert read.status_code == 403 and "review" in read.json()["detail"]
    ingest = app_client.post(url, headers={"X-API-Key": accounts["ingest_key"]}, json={"verdict": "correct"})
    assert ingest.status_code == 401
    login(app_client, "acme@example.com")  # a session cannot post JSON (no CSRF token): key only
    assert app_client.post(url, json={"verdict": "correct"}).status_code == 401
    app_client.cookies.clear()
    created = app_client.post(url, headers={"Authorization": f"Bearer {review_key}"},
                              json={"verdict": "correct", "flags": ["policy"], "note": "fine"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["verdict"] == "correct" and body["flags"] == ["policy"] and body["author_kind"] == "api_key"
    assert body["author"].startswith("key_")
    got = app_client.get(url, headers={"X-API-Key": review_key}).json()  # a review key reads its tenant
    assert got["verdict"] == "correct" and got["reviews"][0]["id"] == body["id"]
    assert app_client.get("/api/v1/tickets", headers={"X-API-Key": review_key}).status_code == 200
    for payload, field in (({"verdict": "maybe"}, "verdict"), ({"verdict": "correct", "flags": ["nope"]}, "flags"),
                           ({"verdict": "correct", "note": "n" * 10_001}, "note"), ([1, 2], "body")):
        bad = app_client.post(url, headers={"X-API-Key": review_key}, json=payload)
        assert bad.status_code == 400 and bad.json()["detail"].startswith(f"{field}:"), bad.text
    bad = app_client.post(url, headers={"X-API-Key": review_key, "Content-Type": "application/json"}, content=b"{no")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("body:")
    other = app_client.post(f"/api/v1/tickets/{ids['G-2']}/reviews", headers={"X-API-Key": review_key},
                            json={"verdict": "incorrect"})
    assert other.status_code == 404
    assert app_client.post("/api/v1/tickets/12345678901/reviews", headers={"X-API-Key": review_key},
                           json={"verdict": "correct"}).status_code == 404


def test_search_api_and_exports_filter_by_review(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "provider@example.com")
    _review(app_client, ids["A-1"], verdict="correct")
    _review(app_client, ids["A-2"], verdict="incorrect", flags=["hallucination"])
    _review(app_client, ids["G-2"], verdict="incorrect", flags=["hallucination"])
    _review(app_client, ids["G-2"], verdict="needs_work")  # the latest review decides
    def tickets(query):
        return sorted(t["ticket_id"] for t in app_client.get(f"/api/v1/tickets?{query}").json()["tickets"])
    assert tickets("verdict=incorrect") == ["A-2"]
    assert tickets("flag=hallucination") == ["A-2"]
    assert tickets("reviewed=yes") == ["A-1", "A-2", "G-2"]
    assert len(tickets("reviewed=no")) == 6
    assert tickets("verdict=needs_work&client=globex") == ["G-2"]
    csv_text = app_client.get("/tickets/export.csv?verdict=incorrect").text
    assert len(csv_text.strip().splitlines()) == 2 and "A-2" in csv_text
    assert [r["ticket_id"] for r in app_client.get("/api/v1/tickets/export.json?reviewed=yes&status=SUCCESS").json()] \
        == ["A-1"]
    page = app_client.get("/tickets?verdict=incorrect")
    assert page.status_code == 200 and 'value="incorrect" selected' in page.text
    for query, field in (("verdict=meh", "verdict"), ("reviewed=maybe", "reviewed"), ("flag=%3Cb%3E", "flag")):
        response = app_client.get(f"/api/v1/tickets?{query}")
        assert response.status_code == 400 and response.json()["detail"].startswith(f"{field}:")


def test_export_round_trips_every_reviewed_ticket_once(app_client, loaded_db):
    dsn, _, ids = loaded_db
    login(app_client, "provider@example.com")
    for name in ("A-1", "A-2", "G-1"):
        _review(app_client, ids[name], verdict="incorrect", note="first")
    _review(app_client, ids["A-2"], verdict="correct", flags=["tone"], corrected_draft="Better draft")
    response = app_client.get("/api/v1/reviews/export.jsonl")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids[n] for n in ("A-1", "A-2", "G-1"))
    stored = {r[0]: r for r in _stored(dsn, "SELECT l.id, l.ticket_id, l.status, l.log_data, s.verdict, s.flags,"
                                             " s.corrected_draft, s.review_count FROM ticket_review_state s"
                                             " JOIN workflow_logs l ON l.id = s.log_id")}
    for line in lines:
        log_id, ticket_id, status, log_data, verdict, flags, corrected, count = stored[line["id"]]
        assert (line["ticket_id"], line["status"], line["verdict"], line["flags"], line["corrected_draft"],
                line["review_count"]) == (ticket_id, status, verdict, flags, corrected, count)
        assert line["draft"] == log_data["trace"]["output"]["draft"]
        assert line["ticket"] == log_data["trace"]["ticket"]
    a2 = next(line for line in lines if line["id"] == ids["A-2"])
    assert (a2["verdict"], a2["flags"], a2["corrected_draft"], a2["review_count"]) == ("correct", ["tone"],
                                                                                      "Better draft", 2)
    # a client's export holds its own tenant only; the filters apply
    app_client.cookies.clear()
    app_client.cookies.clear()
    login(app_client, "acme@example.com")
    mine = [json.loads(line)["ticket_id"] for line in app_client.get("/api/v1/reviews/export.jsonl").text.splitlines()]
    assert sorted(mine) == ["A-1", "A-2"]
    only = app_client.get("/api/v1/reviews/export.jsonl?verdict=correct").text.splitlines()
    assert [json.loads(line)["ticket_id"] for line in only] == ["A-2"]
    assert app_client.get("/api/v1/reviews/export.jsonl?verdict=bad").status_code == 400


def test_queue_orders_unreviewed_tickets_and_save_and_next_moves_on(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    page = app_client.get("/reviews").text
    order = [row.split('">', 1)[1].split("<", 1)[0] for row in page.split('<td class="ticket-id"><a href=')[1:]]
    # FAILED, PARTIAL, then SUCCESS by lowest confidence (the data set's A-OLD is 45 days old: still queued)
    assert order == ["A-2", "A-3", "A-5", "A-4", "A-1", "A-OLD"]
    token = _csrf(app_client, f"/tickets/{ids['A-2']}")
    moved = app_client.post(f"/tickets/{ids['A-2']}/reviews",
                            data={"csrf_token": token, "verdict": "incorrect", "then": "next", "queue": ""})
    assert moved.status_code == 303 and moved.headers["location"] == f"/tickets/{ids['A-3']}#review"
    filtered = app_client.post(f"/tickets/{ids['A-3']}/reviews", data={
        "csrf_token": token, "verdict": "correct", "then": "next", "queue": "status=SUCCESS&max_confidence=0.8"})
    assert filtered.headers["location"].startswith(f"/tickets/{ids['A-5']}?queue=status%3DSUCCESS")
    assert "A-2" not in app_client.get("/reviews").text.split("queue-table", 1)[1]
    assert app_client.get("/reviews?status=bogus").status_code == 400


def test_retention_drops_the_reviews_of_dropped_months(app_client, loaded_db):
    dsn, _, ids = loaded_db
    login(app_client, "provider@example.com")
    _review(app_client, ids["A-OLD"], verdict="correct")
    _review(app_client, ids["A-1"], verdict="correct")
    from collector_api.store.logs.partitions import drop_partitions_before, ensure_partitions, list_partitions

    old_day = _stored(dsn, "SELECT executed_at FROM workflow_logs WHERE id = %s", ids["A-OLD"])[0][0].date()
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn, first=old_day)  # its month gets a partition of its own
        [part] = [p for p in list_partitions(conn) if p.start <= old_day < p.end]
        assert part.end <= date.today()
        drop_partitions_before(conn, part.end)
    for table in ("ticket_reviews", "ticket_review_state"):
        left = {r[0] for r in _stored(dsn, f"SELECT log_id FROM {table}")}
        assert left == {ids["A-1"]}, table  # 45 days apart: never in the same month


def test_verdict_search_pages_in_time_order_and_keeps_tenants_apart(app_client, loaded_db):
    """The verdict/flag search walks the review state (store.reads._PICKS): keyset pages give every
    match once, newest first, with the other filters applied; a client never sees another tenant's."""
    _, _, ids = loaded_db
    login(app_client, "provider@example.com")
    for name in ids:
        _review(app_client, ids[name], verdict="incorrect", flags=["tone"])
    rows = app_client.get("/api/v1/tickets?verdict=incorrect&limit=500").json()["tickets"]
    assert sorted(r["id"] for r in rows) == sorted(ids.values())
    seen, cursor = [], None
    while True:
        page = app_client.get("/api/v1/tickets?flag=tone&limit=2" + (f"&after={cursor}" if cursor else "")).json()
        seen += page["tickets"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [r["id"] for r in seen] == [r["id"] for r in rows]  # same order, each once
    keys = [(r["executed_at"], r["id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    failed = app_client.get("/api/v1/tickets?verdict=incorrect&status=FAILED&limit=500").json()["tickets"]
    assert {r["status"] for r in failed} <= {"FAILED"} and len(failed) == sum(r["status"] == "FAILED" for r in rows)
    acme = sorted(r["id"] for r in rows if r["ticket_id"].startswith("A-"))
    app_client.cookies.clear()
    login(app_client, "acme@example.com")
    mine = app_client.get("/api/v1/tickets?verdict=incorrect&limit=500").json()["tickets"]
    assert acme and sorted(r["id"] for r in mine) == acme


async def _queue_plan(dsn: str, client: str) -> dict:
    from collector_api.store.core.db import Scope, scoped_transaction
    from collector_api.store.logs.reads import TicketFilters
    from collector_api.store.reviews.reads import queue_query

    query, params = queue_query(Scope.tenant(client), TicketFilters(client_id=client, status="SUCCESS"), 50)
    async with create_pool(dsn, max_size=1) as pool, scoped_transaction(pool, Scope.tenant(client)) as conn:
        # A table this small would be read whole and sorted: ask for the ordered walk a large one gets.
        await conn.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        explain = psycopg.sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query
        return (await (await conn.execute(explain, params)).fetchone())["QUERY PLAN"][0]["Plan"]


def _log_rows_read(plan: dict) -> int:
    """Rows of workflow_logs a plan's scans produced or filtered away."""
    own = plan.get("Node Type", "").endswith("Scan") and plan.get("Relation Name", "").startswith("workflow_logs")
    rows = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    return (rows * plan.get("Actual Loops", 1) if own else 0) + sum(_log_rows_read(p) for p in plan.get("Plans", []))


def test_another_tenants_unreviewed_tickets_do_not_slow_a_tenants_queue(loaded_db):
    """A hostile tenant stores 3,000 unreviewed SUCCESS tickets of confidence 0.01: every one sorts
    before acme's in the queue order. acme's queue walks its own entries only (the tenant's queue
    index), so its page reads its 4 SUCCESS tickets, not globex's 3,000 (the walk it replaced)."""
    dsn = loaded_db[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workflow_logs SELECT (jsonb_populate_record(NULL::workflow_logs, to_jsonb(w)"
            " || jsonb_build_object('id', nextval(pg_get_serial_sequence('workflow_logs', 'id')),"
            " 'trace_id', md5(i::text), 'overall_confidence', 0.01))).*"
            " FROM (SELECT * FROM workflow_logs WHERE client_id = 'globex' AND status = 'SUCCESS' LIMIT 1) w,"
            " generate_series(1, 3000) i")
        conn.execute("ANALYZE workflow_logs")
    plan = run_async(_queue_plan(dsn, "acme"))
    assert _log_rows_read(plan) <= 20, plan
    assert run_async(_queue_plan(dsn, "globex"))["Actual Rows"] == 50  # the hostile tenant's own queue: full
