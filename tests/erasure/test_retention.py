"""Retention per tenant: a tenant's expired logs are deleted inside shared monthly partitions (the
other tenants' rows in them stay), a month whose every tenant's data expired is dropped whole, and
every run is an erasure_log row with exact counts and a receipt that verifies."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg

from collector_api.contract.receipts import receipt_of, sign, verify
from collector_api.contract.review_text import ReviewInput
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.erasure.retention import cutoff_of, run_retention, set_retention
from collector_api.store.logs.partitions import ensure_partitions
from collector_api.store.reviews.writes import Author, add_review
from tests.helpers import make_key, run_async, score_rollups

from .helpers import RECEIPT_KEY, bulk_logs, calibration_rollup, count_logs

NOW = datetime.now(UTC)


def _run(dsn: str, fn):
    async def go():
        async with create_pool(dsn) as pool:
            return await fn(pool)
    return run_async(go())


def _month_ago(months: int) -> date:
    index = NOW.year * 12 + NOW.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _partitions(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'workflow_logs'").fetchall()}


def _seed(dsn: str) -> str:
    """acme and globex each: 300 logs three months ago (a month of their own partition), 200 logs
    40-45 days ago, 100 of today. Returns the old month's partition name."""
    old = _month_ago(3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn, first=old)
    for client in ("acme", "globex"):
        make_key(dsn, client)
        bulk_logs(dsn, client, 300, prefix="OLD-", days_ago=(NOW.date() - old).days - 2)
        bulk_logs(dsn, client, 200, prefix="MID-", days_ago=40)
        bulk_logs(dsn, client, 100, prefix="NEW-")
    return f"workflow_logs_{old:%Y_%m}"


def test_one_tenants_retention_deletes_only_its_rows_in_shared_partitions(db_dsn):
    old = _seed(db_dsn)
    assert _run(db_dsn, lambda pool: set_retention(pool, "acme", 30))
    rows = _run(db_dsn, lambda pool: run_retention(pool, batch=70))
    assert [r["client_id"] for r in rows] == ["acme"]
    row = rows[0]
    assert row["kind"] == "retention" and row["status"] == "done"
    assert row["counts"]["workflow_logs"] == 500 and row["counts"]["partitions_dropped"] == 0
    assert count_logs(db_dsn, "acme") == 100 and count_logs(db_dsn, "acme", "NEW-") == 100
    assert count_logs(db_dsn, "globex") == 600  # no retention of its own: untouched, in the same partitions
    assert old in _partitions(db_dsn)  # globex still has data in it
    receipt = sign(receipt_of(row), RECEIPT_KEY)
    assert verify(receipt, RECEIPT_KEY) and receipt["asked"]["retention_days"] == 30
    assert _run(db_dsn, lambda pool: run_retention(pool)) == []  # nothing left to do: no new run


def test_a_month_whose_every_tenant_expired_is_dropped_whole_and_counted(db_dsn):
    old = _seed(db_dsn)
    for client, days in (("acme", 30), ("globex", 60)):
        assert _run(db_dsn, lambda pool, c=client, d=days: set_retention(pool, c, d))
    rows = {r["client_id"]: r for r in _run(db_dsn, lambda pool: run_retention(pool))}
    assert old not in _partitions(db_dsn)
    assert rows["acme"]["counts"]["workflow_logs"] == 500 and rows["acme"]["counts"]["partitions_dropped"] == 1
    assert rows["globex"]["counts"]["workflow_logs"] == 300  # 40 days old is within globex's 60
    assert count_logs(db_dsn, "globex") == 300 and count_logs(db_dsn, "acme") == 100
    with psycopg.connect(db_dsn) as conn:
        kinds = conn.execute("SELECT client_id, kind, status FROM erasure_log ORDER BY 1").fetchall()
    assert kinds == [("acme", "retention", "done"), ("globex", "retention", "done")]


def test_retention_rows_of_the_erasure_log_are_append_only(db_dsn):
    _seed(db_dsn)
    _run(db_dsn, lambda pool: set_retention(pool, "acme", 30))
    _run(db_dsn, lambda pool: run_retention(pool))
    with psycopg.connect(db_dsn) as conn:
        for statement in ("UPDATE erasure_log SET counts = '{}'", "DELETE FROM erasure_log"):
            try:
                conn.execute(statement)
                raise AssertionError(f"{statement} was allowed")
            except psycopg.errors.RaiseException as exc:
                assert "erasure_log" in str(exc)
                conn.rollback()


def test_the_cutoff_is_a_utc_midnight_so_rollups_lose_whole_days_only(db_dsn):
    cut = cutoff_of(30, NOW)
    assert cut.hour == cut.minute == 0 and NOW - cut >= timedelta(days=30) and NOW - cut < timedelta(days=31)


def test_only_an_erasure_transaction_lets_the_rls_role_delete_logs_and_the_owner_still_can(db_dsn):
    from collector_api.store.core.db import Scope, scoped_transaction
    from collector_api.store.erasure.run import erasing

    bulk_logs(db_dsn, "acme", 3)

    async def delete(declared: bool) -> int:
        async with create_pool(db_dsn, max_size=1) as pool:
            async with scoped_transaction(pool, Scope.tenant("acme")) as conn:
                if declared:
                    await erasing(conn)
                cur = await conn.execute("DELETE FROM workflow_logs WHERE ticket_id = %s", ("T-0" if declared
                                                                                            else "T-1",))
                return cur.rowcount
    assert run_async(delete(False)) == 0  # the tenant's own row, but not in an erasure: refused by policy
    assert run_async(delete(True)) == 1
    with psycopg.connect(db_dsn) as conn:  # the owner (global retention, partition upkeep) is not bound
        assert conn.execute("DELETE FROM workflow_logs WHERE ticket_id = 'T-1'").rowcount == 1


async def _review_some(pool, dsn: str) -> None:
    """Three reviewed tickets of each age (OLD, MID, NEW) per tenant, with a confidence and a risk."""
    with psycopg.connect(dsn) as conn:
        picks = conn.execute("UPDATE workflow_logs SET overall_confidence = 0.75, hallucination_risk = 0.25"
                             " WHERE ticket_id ~ '^(OLD|MID|NEW)-[012]$' RETURNING client_id, id").fetchall()
    for client, log_id in picks:
        await add_review(pool, Scope.tenant(client), log_id, ReviewInput("correct", ("hallucination",)),
                         Author("r@example.com", "user", "client"))


def test_retention_takes_the_expired_days_out_of_the_calibration_rollup(db_dsn):
    _seed(db_dsn)
    _run(db_dsn, lambda pool: _review_some(pool, db_dsn))
    with psycopg.connect(db_dsn) as conn:  # every log scored (the evaluator rollups follow retention too)
        conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score)"
                     " SELECT client_id, id, executed_at, 'judge', 1, 0.75 FROM workflow_logs")
    assert {c: sum(r[3] for r in calibration_rollup(db_dsn) if r[0] == c) for c in ("acme", "globex")} == {
        "acme": 9, "globex": 9}
    assert sum(r[4] + r[5] for r in score_rollups(db_dsn)[1]) == 18
    assert _run(db_dsn, lambda pool: set_retention(pool, "acme", 30))
    _run(db_dsn, lambda pool: run_retention(pool, batch=70))
    rows = calibration_rollup(db_dsn)  # still equal to a fresh aggregate of the reviews left
    assert sum(r[3] for r in rows if r[0] == "acme") == 3 and sum(r[3] for r in rows if r[0] == "globex") == 9
    assert all(r[1] >= cutoff_of(30, NOW).date() for r in rows if r[0] == "acme")
    scores, verdicts = score_rollups(db_dsn)
    assert sum(r[4] + r[5] for r in verdicts) == 12
    assert all(r[1] >= cutoff_of(30, NOW).date() for r in scores if r[0] == "acme")
