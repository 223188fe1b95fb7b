"""Datasets: made from a search, the review queue or ids (API, form, CLI parser), copies of the
tickets; tenants never cross; hostile bodies; experiments read from tagged logs."""
from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from collector_api.store.core.db import create_pool
from collector_api.store.datasets.writes import delete_items_of_tickets

from .helpers import csrf_token, experiment_log, login, make_key, post_review, run_async, store_logs


def _post(client, key: str | None, body, **headers) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/api/v1/datasets", content=content,
                       headers={"Content-Type": "application/json", **({"X-API-Key": key} if key else {}), **headers})


def _items(client, key: str, name: str, **params) -> dict:
    r = client.get(f"/api/v1/datasets/{name}/items", params=params, headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture()
def reviewed(app_client, loaded_db):
    """acme's A-2 judged incorrect with a corrected draft, A-3 incorrect without one, A-1 correct."""
    dsn, _, ids = loaded_db
    login(app_client, "acme@example.com")
    assert post_review(app_client, ids["A-2"], verdict="incorrect", flags=["hallucination"],
                       corrected_draft="Hello, your order ships today.").status_code == 303
    assert post_review(app_client, ids["A-3"], verdict="incorrect").status_code == 303
    assert post_review(app_client, ids["A-1"], verdict="correct").status_code == 303
    app_client.cookies.clear()
    return dsn, ids, make_key(dsn, "acme", "read")


def test_a_dataset_from_a_search_copies_input_expected_output_and_verdict(app_client, reviewed):
    dsn, ids, key = reviewed
    r = _post(app_client, key, {"name": "hard-cases", "search": "verdict=incorrect&sort=confidence&limit=1"})
    assert r.status_code == 201, r.text
    assert r.json()["item_count"] == 2 and r.json()["source"] == "search" and r.json()["client_id"] == "acme"
    items = _items(app_client, key, "hard-cases")["items"]
    assert [i["source"]["ticket_id"] for i in items] == ["A-2", "A-3"]  # newest first; sort/limit of a page ignored
    a2, a3 = items
    assert a2["expected_output"] == "Hello, your order ships today." and a2["expected_source"] == "corrected"
    assert a2["verdict"] == "incorrect" and a2["flags"] == ["hallucination"] and a2["source"]["log_id"] == ids["A-2"]
    assert a3["expected_source"] == "draft" and a3["expected_output"].startswith("Hello [name:")
    assert a2["input"]["ticket_id"] == "A-2" and a2["input"]["subject"] == "[text:f2e4a6b8c0d1]"  # as stored
    # items are copies: the stored log changing later (here: its draft) does not change them
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE workflow_logs SET log_data = jsonb_set(log_data, '{trace,output,draft}', '\"x\"')"
                     " WHERE id = %s", [ids["A-3"]])
    assert _items(app_client, key, "hard-cases")["items"][1]["expected_output"].startswith("Hello [name:")
    export = app_client.get("/api/v1/datasets/hard-cases/export.jsonl", headers={"X-API-Key": key})
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert export.headers["content-type"].startswith("application/x-ndjson") and lines == items


def test_from_ids_and_from_the_queue_and_keyset_pages(app_client, reviewed):
    _, ids, key = reviewed
    r = _post(app_client, key, {"name": "picked", "log_ids": [ids["A-1"], ids["A-4"], ids["G-1"], ids["A-1"]]})
    assert r.status_code == 201 and r.json()["item_count"] == 2  # globex's id is not acme's: left out
    r = _post(app_client, key, {"name": "queue", "queue": "status=SUCCESS"})
    assert r.status_code == 201, r.text
    tickets = [i["source"]["ticket_id"] for i in _items(app_client, key, "queue")["items"]]
    assert sorted(tickets) == ["A-4", "A-5", "A-OLD"]  # unreviewed SUCCESS tickets only
    first = _items(app_client, key, "queue", limit="2")
    assert len(first["items"]) == 2 and first["next_after"] is not None
    rest = _items(app_client, key, "queue", limit="2", after=str(first["next_after"]))
    assert len(rest["items"]) == 1 and rest["next_after"] is None
    assert [i["source"]["ticket_id"] for i in first["items"] + rest["items"]] == tickets


def test_tenants_never_cross(app_client, reviewed):
    dsn, ids, key = reviewed
    globex = make_key(dsn, "globex", "read")
    assert _post(app_client, key, {"name": "mine", "search": "status=FAILED"}).status_code == 201
    # another tenant's ids copy nothing: 404 and no dataset
    r = _post(app_client, key, {"name": "theirs", "log_ids": [ids["G-1"], ids["G-2"]]})
    assert r.status_code == 404 and "not created" in r.json()["detail"]
    assert app_client.get("/api/v1/datasets/theirs", headers={"X-API-Key": key}).status_code == 404
    # globex cannot see, page or export acme's dataset, nor list it; a search for client=acme is its own
    for path in ("/api/v1/datasets/mine", "/api/v1/datasets/mine/items", "/api/v1/datasets/mine/export.jsonl",
                 "/api/v1/datasets/mine?client=acme"):
        assert app_client.get(path, headers={"X-API-Key": globex}).status_code == 404, path
    assert app_client.get("/api/v1/datasets", headers={"X-API-Key": globex}).json() == {"datasets": []}
    r = _post(app_client, globex, {"name": "mine", "search": "client=acme&status=FAILED"})
    assert r.status_code == 201 and r.json()["client_id"] == "globex"
    assert [i["source"]["ticket_id"] for i in _items(app_client, globex, "mine")["items"]] == ["G-2"]
    # the provider sees both, naming the tenant; a client user only its own
    login(app_client, "provider@example.com")
    assert {d["client_id"] for d in app_client.get("/api/v1/datasets").json()["datasets"]} == {"acme", "globex"}
    assert app_client.get("/api/v1/datasets/mine/items").status_code == 400  # which tenant's?
    assert _ids(app_client.get("/api/v1/datasets/mine/items?client=globex").json()) == ["G-2"]
    app_client.cookies.clear()
    login(app_client, "globex@example.com")
    assert app_client.get("/datasets/mine?client=acme").status_code == 200  # its own "mine", whatever it asks
    assert "G-2" in app_client.get("/datasets/mine?client=acme").text
    assert "A-2" not in app_client.get("/datasets/mine").text


def _ids(page: dict) -> list[str]:
    return [i["source"]["ticket_id"] for i in page["items"]]


def test_hostile_requests_get_a_clear_4xx(app_client, reviewed):
    dsn, ids, key = reviewed
    ingest, review = make_key(dsn, "acme", "ingest"), make_key(dsn, "acme", "review")
    ok = {"name": "x1", "search": "status=FAILED"}
    assert _post(app_client, ingest, ok).status_code == 401  # wrong scope
    assert _post(app_client, None, ok).status_code == 401  # no key
    login(app_client, "acme@example.com")
    assert _post(app_client, None, ok).status_code == 401  # a session posts the form (CSRF), not the API
    app_client.cookies.clear()
    assert _post(app_client, review, ok).status_code == 201  # a review key reads too
    cases = {
        "name": {"name": "../etc", "search": "status=FAILED"},
        "source": {"name": "x2", "search": "status=FAILED", "log_ids": [1]},
        "status": {"name": "x3", "search": "status=NOPE"},
        "limit": {"name": "x4", "search": "status=FAILED", "limit": 0},
        "log_ids": {"name": "x5", "log_ids": list(range(1, 10_002))},
        "log_ids ": {"name": "x6", "log_ids": ["1 OR 1=1"]},
        "start": {"name": "x7", "search": "start=not-a-date"},
        "search": {"name": "x10", "search": "ticket=%00"},
        "search ": {"name": "x11", "search": "ticket=\x00"},
        "queue": {"name": "x12", "queue": ["status=FAILED"]},
        "limit ": {"name": "x13", "search": "status=FAILED", "limit": True},
        "body": [1, 2],
    }
    for field, body in cases.items():
        r = _post(app_client, key, body)
        assert r.status_code == 400 and field.strip() in r.json()["detail"], (field, r.text)
    assert _post(app_client, key, b"{not json").status_code == 400
    assert _post(app_client, key, ok | {"name": "x1"}).status_code == 409  # the name is taken
    huge = json.dumps({"name": "x8", "search": "a=" + "b" * 70_000}).encode()
    assert _post(app_client, key, huge).status_code == 413  # the body guard, before any route code
    many = _post(app_client, key, {"name": "x9", "log_ids": list(range(1, 10_001))})  # 10,000 ids: fine
    assert many.status_code == 201 and many.json()["item_count"] == 6  # acme's tickets among them


def test_the_search_pages_form_saves_a_dataset_with_csrf(app_client, reviewed):
    login(app_client, "acme@example.com")
    page = app_client.get("/tickets?status=FAILED").text
    assert 'id="save-dataset"' in page and 'name="query" value="status=FAILED"' in page
    token = csrf_token(app_client, "/tickets")
    r = app_client.post("/datasets", data={"csrf_token": token, "source": "search", "query": "status=FAILED",
                                           "name": "failed"})
    assert r.status_code == 303 and r.headers["location"] == "/datasets/failed?client=acme"
    assert "A-2" in app_client.get(r.headers["location"]).text
    r = app_client.post("/datasets", data={"csrf_token": "forged", "source": "search", "query": "", "name": "f2"})
    assert r.status_code == 400 and "csrf" in r.text
    assert "failed" in app_client.get("/datasets").text


def test_experiment_logs_are_tagged_stored_and_compared(app_client, reviewed):
    dsn, ids, key = reviewed
    made = _post(app_client, key, {"name": "exp", "search": "verdict=incorrect"}).json()
    items = _items(app_client, key, "exp")["items"]
    tags = {"dataset_id": made["id"], "dataset": "exp"}
    v6 = {"id": "a" * 32, "name": "prompt-v6", **tags}
    v7 = {"id": "b" * 32, "name": "prompt-v7", **tags}
    store_logs(dsn, [
        experiment_log("acme", "A-2", v6 | {"item_id": items[0]["id"]}, draft="Hello, your order ships soon.",
                       status="PARTIAL", cost=0.02, duration_s=3),
        experiment_log("acme", "A-3", v6 | {"item_id": items[1]["id"]}, draft="<script>alert(1)</script>",
                       status="FAILED"),
        experiment_log("acme", "A-2", v7 | {"item_id": items[0]["id"]}, draft="Hello, your order ships today.",
                       cost=0.01, duration_s=1),
        experiment_log("acme", "A-3", {"id": "not-hex", "name": "bad", "item_id": 1}, draft="kept"),  # stored, untagged
    ])
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM workflow_logs WHERE experiment_id IS NULL"
                            " AND log_data #>> '{trace,output,draft}' = 'kept'").fetchone()[0] == 1
    listing = app_client.get("/api/v1/experiments", headers={"X-API-Key": key}).json()["experiments"]
    assert sorted(e["name"] for e in listing) == ["prompt-v6", "prompt-v7"]
    one = app_client.get(f"/api/v1/experiments/{'a' * 32}", headers={"X-API-Key": key}).json()
    assert one["totals"]["ran"] == 2 and one["totals"]["failed"] == 1
    assert one["totals"]["partial"] == 1 and one["totals"]["cost_usd"] == pytest.approx(0.03)
    first = one["items"][0]["run"]
    assert {"op": "del", "text": "today."} in first["diff"] and {"op": "ins", "text": "soon."} in first["diff"]
    login(app_client, "acme@example.com")
    html = app_client.get(f"/experiments/{'a' * 32}").text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    app_client.cookies.clear()
    cmp = app_client.get(f"/api/v1/experiments/compare?a={'a' * 32}&b={'b' * 32}", headers={"X-API-Key": key}).json()
    # A-2: PARTIAL -> SUCCESS is better; A-3: FAILED in A, not run in B, is worse
    assert cmp["summary"]["status"] == {"better": 1, "worse": 1, "same": 0, "unknown": 0}
    rows = {r["item"]["source"]["ticket_id"]: r for r in cmp["items"]}
    assert rows["A-2"]["outcome"] == "better" and rows["A-2"]["b"]["changed"] is False
    assert rows["A-3"]["outcome"] == "worse" and rows["A-3"]["b"] is None
    assert app_client.get(f"/api/v1/experiments/compare?a={'a' * 32}&b={'a' * 32}",
                          headers={"X-API-Key": key}).status_code == 400
    assert [m["metric"] for m in rows["A-2"]["metrics"]] == ["status", "cost_usd", "latency_s"]
    # An online evaluator scored both runs of A-2 (the evaluation job's table): one more metric.
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score)"
                     " SELECT client_id, id, executed_at, 'groundedness', 1,"
                     " CASE experiment_id WHEN %s THEN 0.4 ELSE 0.9 END FROM workflow_logs"
                     " WHERE ticket_id = 'A-2' AND experiment_id IS NOT NULL", ("a" * 32,))
    cmp = app_client.get(f"/api/v1/experiments/compare?a={'a' * 32}&b={'b' * 32}", headers={"X-API-Key": key}).json()
    scored = {r["item"]["source"]["ticket_id"]: r for r in cmp["items"]}["A-2"]["metrics"]
    assert [m["metric"] for m in scored] == ["status", "cost_usd", "latency_s", "score:groundedness"], scored
    assert scored[-1]["a"] == 0.4 and scored[-1]["b"] == 0.9 and scored[-1]["outcome"] == "better", scored[-1]
    # another tenant's key sees no experiment of acme
    globex = make_key(dsn, "globex", "read")
    assert app_client.get(f"/api/v1/experiments/{'a' * 32}", headers={"X-API-Key": globex}).status_code == 404
    assert app_client.get("/api/v1/experiments", headers={"X-API-Key": globex}).json() == {"experiments": []}


def test_erasure_deletes_the_copies_of_a_ticket(app_client, reviewed):
    dsn, ids, key = reviewed
    assert _post(app_client, key, {"name": "e", "search": "verdict=incorrect"}).json()["item_count"] == 2

    async def erase():
        async with create_pool(dsn, max_size=1) as pool, pool.connection() as conn:
            return await delete_items_of_tickets(conn, "acme", [ids["A-2"]], ["A-3"])

    assert run_async(erase()) == 2  # the copies of A-2 (by log) and A-3 (by ticket)
    page = app_client.get("/api/v1/datasets/e", headers={"X-API-Key": key}).json()
    assert page["items"] == [] and page["dataset"]["item_count"] == 0


def test_an_evaluator_score_is_one_more_metric_and_the_diff_is_by_word():
    from viewer.experiments import METRICS, judge, score_metric, summary_of
    from viewer.worddiff import changed, word_diff

    a = {1: {"status": "SUCCESS", "cost_usd": 0.1, "execution_time_seconds": 2, "scores": {"faithful": 0.4}},
         2: {"status": "FAILED", "cost_usd": 0.1, "execution_time_seconds": 2, "scores": {}}}
    b = {1: {"status": "SUCCESS", "cost_usd": 0.1, "execution_time_seconds": 3, "scores": {"faithful": 0.9}}}
    metrics = (*METRICS, score_metric("faithful"))
    assert [judge(m, a[1], b[1])["outcome"] for m in metrics] == ["same", "same", "worse", "better"]
    summary = summary_of(metrics, a, b, {1, 2})
    assert summary["status"] == {"better": 0, "worse": 1, "same": 1, "unknown": 0}  # item 2: not run in B
    assert summary["score:faithful"] == {"better": 1, "worse": 0, "same": 0, "unknown": 1}
    diff = word_diff("Hello Ann,\nyour order ships today.", "Hello Ann,\nyour order ships <b>now</b>.")
    assert [s for s in diff if s["op"] != "same"] == [{"op": "del", "text": "today."},
                                                      {"op": "ins", "text": "<b>now</b>."}]
    assert changed(diff) and not changed(word_diff("a  b", "a b"))
    long = word_diff("x " * 5000, "y " * 5000)
    assert sum(len(s["text"].split()) for s in long) <= 2 * 2_001
