"""The usage report equals sums over the raw logs, through the rollups or live; the critical-path
nodes; and the derived backfill for logs stored before migration 0013."""
from __future__ import annotations

import copy
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from collector_api.contract.dates import parse_month
from collector_api.contract.derived import critical_nodes, critical_path, derive_rows
from collector_api.contract.prepare import Rejected, prepare_row
from collector_api.contract.usage_csv import usage_csv
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.logs import rollups
from collector_api.store.logs.backfill import backfill_derived
from collector_api.store.logs.recontact import get_recontact
from collector_api.store.logs.usage import get_critical_nodes, get_usage
from collector_api.store.logs.writes import insert_workflow_logs
from tests.helpers import run_async
from tests.viewer.helpers import EXAMPLE

NOW = datetime.now(UTC)
THIS_MONTH = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
LAST_MONTH = (THIS_MONTH - timedelta(days=1)).replace(day=1)
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet")


def make_doc(client: str, n: int, executed: datetime, seed: int) -> dict:
    doc = copy.deepcopy(EXAMPLE)
    doc["trace_id"] = uuid.uuid4().hex
    doc["identification"]["client_id"] = client
    doc["ticket_info"].update(ticket_id=f"{client}-{n}", executed_at=executed.isoformat())
    doc["outcome"]["status"] = ("SUCCESS", "PARTIAL", "FAILED")[seed % 3]
    calls = [{"model": MODELS[(seed + k) % 3] if (seed + k) % 5 else None, "input_tokens": 100 + seed * 7 + k,
              "output_tokens": 10 + seed + k, "cost_usd": round(0.001 * (seed + 1) + 0.0001 * k, 6)}
             for k in range(seed % 4)]
    doc["trace"]["llm_calls"] = calls
    doc["metrics"].update(llm_calls=len(calls), input_tokens=sum(c["input_tokens"] for c in calls),
                          output_tokens=sum(c["output_tokens"] for c in calls),
                          cost_usd=round(sum(c["cost_usd"] for c in calls), 8))
    root = doc["trace"]["spans"][0]["span_id"]
    doc["trace"]["spans"] += [  # two parallel retrievals: the longer one alternates
        {"name": "vision_search", "kind": "retriever", "span_id": f"{seed:08x}aaaaaaaa", "parent_span_id": root,
         "start_offset_ms": 900.0, "duration_ms": 300.0 + 200 * (seed % 2), "status": "OK", "error": None,
         "attributes": {}},
        {"name": "text_rag", "kind": "retriever", "span_id": f"{seed:08x}bbbbbbbb", "parent_span_id": root,
         "start_offset_ms": 900.0, "duration_ms": 400.0, "status": "OK", "error": None, "attributes": {}}]
    return doc


def seeded() -> list[dict]:
    docs, n = [], 0
    for client in ("acme", "globex", "=cmd"):
        for i in range(7):
            n += 1
            when = THIS_MONTH + timedelta(hours=5 * i) if i % 2 else LAST_MONTH + timedelta(days=i, hours=3)
            docs.append(make_doc(client, n, when, n))
    docs.append(make_doc("acme", 900, THIS_MONTH, 11))  # the first instant of the month
    docs.append(make_doc("acme", 901, THIS_MONTH - timedelta(microseconds=1), 12))  # the last of the one before
    return docs


async def _store(dsn: str, docs: list[dict]) -> None:
    async with create_pool(dsn, max_size=2) as pool:
        for doc in docs:
            tenant = doc["identification"]["client_id"]
            row = prepare_row(0, copy.deepcopy(doc), tenant, None)
            assert not isinstance(row, Rejected), row
            await insert_workflow_logs(pool, tenant, [row])


def expected(docs: list[dict], start: datetime, end: datetime) -> dict[str, dict]:
    """The report computed by hand from the raw documents."""
    out: dict[str, dict] = {}
    for d in docs:
        if not start <= datetime.fromisoformat(d["ticket_info"]["executed_at"]) < end:
            continue
        c = out.setdefault(d["identification"]["client_id"], {"success": 0, "partial": 0, "failed": 0,
                                                              "input_tokens": 0, "output_tokens": 0,
                                                              "cost_usd": 0.0, "models": {}})
        c[d["outcome"]["status"].lower()] += 1
        for k in ("input_tokens", "output_tokens", "cost_usd"):
            c[k] += d["metrics"][k]
        for call in d["trace"]["llm_calls"]:
            m = c["models"].setdefault(call["model"] or "(unknown)", [0, 0, 0, 0.0])
            m[0] += 1
            m[1] += call["input_tokens"]
            m[2] += call["output_tokens"]
            m[3] += call["cost_usd"]
    return out


def check(report, want: dict[str, dict]) -> None:
    got = {c.client_id: c for c in report.clients}
    assert set(got) == set(want)
    for client, w in want.items():
        c = got[client]
        assert (c.success, c.partial, c.failed) == (w["success"], w["partial"], w["failed"]), client
        assert (c.input_tokens, c.output_tokens) == (w["input_tokens"], w["output_tokens"]), client
        assert abs(c.cost_usd - w["cost_usd"]) < 1e-9, client
        assert set(c.models) == set(w["models"]), client
        for model, (calls, tin, tout, cost) in w["models"].items():
            m = c.models[model]
            assert (m["calls"], m["input_tokens"], m["output_tokens"]) == (calls, tin, tout), (client, model)
            assert abs(m["cost_usd"] - cost) < 1e-9
        assert c.llm_calls == sum(v[0] for v in w["models"].values())


def run(coro):
    return run_async(coro)


async def _report(dsn, scope, start, end, client=None, use_rollups=True):
    async with create_pool(dsn, max_size=2) as pool:
        return await get_usage(pool, scope, start, end, client_id=client, use_rollups=use_rollups)


async def _recontact(dsn, start, end):
    async with create_pool(dsn, max_size=2) as pool:
        return await get_recontact(pool, Scope.provider(), start, end)


async def _refresh(dsn):
    async with create_pool(dsn, max_size=2) as pool:
        return await rollups.refresh_rollups(pool)


def test_usage_equals_raw_sums_live_rolled_and_as_csv(db_dsn):
    docs = seeded()
    run(_store(db_dsn, docs))
    for month_start in (LAST_MONTH, THIS_MONTH):
        start, end = parse_month(month_start.strftime("%Y-%m"))
        want = expected(docs, start, end)
        check(run(_report(db_dsn, Scope.provider(), start, end, use_rollups=False)), want)
    run(_refresh(db_dsn))
    for month_start in (LAST_MONTH, THIS_MONTH):
        start, end = parse_month(month_start.strftime("%Y-%m"))
        want = expected(docs, start, end)
        report = run(_report(db_dsn, Scope.provider(), start, end))
        check(report, want)
        # The CSV carries the same figures; a tenant id a spreadsheet would run is quoted.
        rows = list(csv.DictReader(io.StringIO(usage_csv(report, run(_recontact(db_dsn, start, end))))))
        totals = {r["client_id"]: r for r in rows if r["model"] == "*"}
        assert set(totals) == {("'" + c if c.startswith("=") else c) for c in want}
        for client, w in want.items():
            line = totals["'" + client if client.startswith("=") else client]
            assert int(line["tickets"]) == w["success"] + w["partial"] + w["failed"]
            assert int(line["input_tokens"]) == w["input_tokens"]
            assert abs(float(line["cost_usd"]) - w["cost_usd"]) < 1e-7
            models = {r["model"]: r for r in rows if r["client_id"] == line["client_id"] and r["model"] != "*"}
            assert {m: int(r["llm_calls"]) for m, r in models.items()} == {m: v[0] for m, v in w["models"].items()}
    # A custom range not aligned on days is summed live and still agrees.
    start, end = THIS_MONTH - timedelta(hours=7), THIS_MONTH + timedelta(hours=11)
    check(run(_report(db_dsn, Scope.provider(), start, end)), expected(docs, start, end))


def test_a_client_sees_only_its_own_usage(db_dsn):
    docs = seeded()
    run(_store(db_dsn, docs))
    start, end = parse_month(THIS_MONTH.strftime("%Y-%m"))
    report = run(_report(db_dsn, Scope.tenant("acme"), start, end, client="globex"))  # asks for another tenant
    assert [c.client_id for c in report.clients] == ["acme"]
    check(report, {"acme": expected(docs, start, end)["acme"]})
    one = run(_report(db_dsn, Scope.provider(), start, end, client="globex"))
    assert [c.client_id for c in one.clients] == ["globex"]


def test_bad_months_are_refused_by_name():
    import pytest

    from collector_api.contract.dates import DateError

    for bad in ("2026-13", "2026-00", "2026-1", "26-11", "2026-11-01", "", "x" * 500, "9999-12", "0000-05"):
        with pytest.raises(DateError, match="month"):
            parse_month(bad)
    assert parse_month("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_critical_nodes_count_tickets_per_node(db_dsn):
    docs = seeded()
    run(_store(db_dsn, docs))
    want: dict[str, int] = {}
    for d in docs:
        for node in critical_nodes(critical_path(d["trace"]["spans"])):
            want[node] = want.get(node, 0) + 1
    assert want.get("vision_search") and want.get("text_rag")  # each is critical in some tickets

    async def nodes(use_rollups):
        async with create_pool(db_dsn, max_size=2) as pool:
            got = await get_critical_nodes(pool, Scope.provider(), LAST_MONTH, THIS_MONTH + timedelta(days=40),
                                           use_rollups=use_rollups, limit=100)
        return {n["node"]: n["tickets"] for n in got}

    assert run(nodes(False)) == want
    run(_refresh(db_dsn))
    assert run(nodes(True)) == want


def test_backfill_derives_older_logs_and_reopens_their_days(db_dsn):
    docs = seeded()
    run(_store(db_dsn, docs))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        before = dict(conn.execute("SELECT id, critical_path FROM workflow_logs").fetchall())
        # As if stored before migration 0013.
        conn.execute("UPDATE workflow_logs SET critical_path = NULL, usage_by_model = NULL WHERE client_id = 'acme'")
    run(_refresh(db_dsn))
    start, end = parse_month(THIS_MONTH.strftime("%Y-%m"))
    stale = run(_report(db_dsn, Scope.provider(), start, end))
    assert {c.client_id: c for c in stale.clients}["acme"].models == {}  # no usage by model yet

    async def backfill():
        async with create_pool(db_dsn, max_size=2) as pool:
            return await backfill_derived(pool, derive_rows, batch=3)  # several batches

    assert run(backfill()) == sum(1 for d in docs if d["identification"]["client_id"] == "acme")
    assert run(backfill()) == 0
    with psycopg.connect(db_dsn) as conn:
        assert dict(conn.execute("SELECT id, critical_path FROM workflow_logs").fetchall()) == before
        days = {r[0] for r in conn.execute("SELECT day FROM viewer_rollup_days").fetchall()}
        acme_days = {r[0] for r in conn.execute("SELECT DISTINCT (executed_at AT TIME ZONE 'UTC')::date"
                                                " FROM workflow_logs WHERE client_id = 'acme'").fetchall()}
    assert not days & acme_days  # read live until the next refresh
    check(run(_report(db_dsn, Scope.provider(), start, end)), expected(docs, start, end))
    run(_refresh(db_dsn))
    check(run(_report(db_dsn, Scope.provider(), start, end)), expected(docs, start, end))
    assert all(set(v) == {"spans", "nodes"} and v["spans"] for v in before.values())
