"""Searching tickets by an evaluator's score: the time-ordered pages walk the scores themselves
(latest version only), page after page with the keyset cursor, alone or with a verdict, a log
filter, the reviewed filter or another sort, for a tenant and for the provider: always the rows
a brute-force reading of the tables gives, in the same order, and counted the same."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.store.core.db import Scope, create_pool
from collector_api.store.logs.reads import TicketFilters, count_tickets, list_tickets
from tests.evals.helpers import build_log, insert_log
from tests.helpers import run_async

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def scored(module_db_dsn):
    """acme: 30 logs a minute apart, judge v1 0.9 on all, v2 0.2 on the even ones (their latest),
    every third FAILED, every fifth reviewed (correct when i % 10 == 0); globex: 10 logs at 0.9.
    Returns (dsn, {log id: (client, at, status, latest score, verdict)})."""
    dsn, truth = module_db_dsn, {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The evaluator at version 2: its v2 scores are latest without a probe (store.logs.reads._LATEST_ONLY).
        conn.execute("INSERT INTO evaluators (name, kind, version) VALUES ('judge', 'judge', 2)")
        for client, n in (("acme", 30), ("globex", 10)):
            for i in range(n):
                at = NOW - timedelta(minutes=2 * i + (client == "globex"))
                status = "FAILED" if i % 3 == 0 else "SUCCESS"
                log_id = insert_log(dsn, client, build_log(), ticket=f"{client}-{i}", at=at, status=status)
                conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version,"
                             " score) VALUES (%s, %s, %s, 'judge', 1, 0.9)", (client, log_id, at))
                latest = 0.9
                if client == "acme" and i % 2 == 0:
                    conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version,"
                                 " score) VALUES (%s, %s, %s, 'judge', 2, 0.2)", (client, log_id, at))
                    latest = 0.2
                verdict = None
                if i % 5 == 0:
                    verdict = "correct" if i % 10 == 0 else "incorrect"
                    conn.execute("INSERT INTO ticket_review_state (log_id, client_id, executed_at, status, verdict,"
                                 " flags, review_count, last_review_id, last_review_at)"
                                 " VALUES (%s, %s, %s, %s, %s, '{}', 1, 1, now())",
                                 (log_id, client, at, status, verdict))
                truth[log_id] = (client, at, status, latest, verdict)
    return dsn, truth


def _expected(truth: dict, scope: Scope, f: TicketFilters, descending: bool = True) -> list[int]:
    ids = [i for i, (client, at, status, score, verdict) in truth.items()
           if f.evaluator == "judge" and (scope.all_tenants or client == scope.client_id)
           and (f.min_score or 0) <= score <= (1 if f.max_score is None else f.max_score)
           and (f.status is None or status == f.status) and (f.verdict is None or verdict == f.verdict)
           and (f.reviewed is None or (verdict is not None) == f.reviewed)]
    return sorted(ids, key=lambda i: (truth[i][1], i), reverse=descending)


async def _all_pages(dsn: str, scope: Scope, f: TicketFilters, descending: bool, sort: str = "time"):
    async with create_pool(dsn, max_size=2) as pool:
        ids, after, pages = [], None, 0
        while True:
            page = await list_tickets(pool, scope, f, sort=sort, descending=descending, limit=4, after=after)
            ids += [r["id"] for r in page.rows]
            pages += 1
            if page.next_cursor is None:
                return ids, (await count_tickets(pool, scope, f)).value, pages
            after = page.next_cursor


CASES = [TicketFilters(evaluator="judge", min_score=0.5), TicketFilters(evaluator="judge", max_score=0.5),
         TicketFilters(evaluator="judge", min_score=0.5, status="FAILED"),
         TicketFilters(evaluator="judge", min_score=0.1, verdict="incorrect"),
         TicketFilters(evaluator="judge", max_score=0.5, reviewed=True),
         TicketFilters(evaluator="judge", min_score=0.5, reviewed=False),
         TicketFilters(evaluator="judge", min_score=0.95), TicketFilters(evaluator="other")]


@pytest.mark.parametrize("f", CASES, ids=range(len(CASES)))
@pytest.mark.parametrize("scope", [Scope.tenant("acme"), Scope.provider()], ids=["tenant", "provider"])
def test_score_search_pages_match_a_brute_force_reading(scored, f, scope):
    dsn, truth = scored
    for descending in (True, False):
        ids, count, pages = run_async(_all_pages(dsn, scope, f, descending))
        expected = _expected(truth, scope, f, descending)
        assert ids == expected and count == len(expected)
        assert pages == max(1, -(-len(expected) // 4))  # keyset pages of 4, the last one without a cursor
    if f.evaluator == "judge" and f.min_score == 0.5 and f.status is None and f.reviewed is None:
        assert len(_expected(truth, scope, f)) == (15 if scope.client_id else 25)  # the seed is what it says


def test_another_sort_probes_each_log_for_its_score(scored):
    dsn, truth = scored
    f = TicketFilters(evaluator="judge", max_score=0.5)
    ids, count, _ = run_async(_all_pages(dsn, Scope.provider(), f, True, sort="duration"))
    assert sorted(ids) == sorted(_expected(truth, Scope.provider(), f)) and count == 15


def test_a_version_bump_without_new_scores_finds_the_same_latest_scores(scored):
    """At version 3 no score is current: every one is probed for a newer one, with the same answer."""
    dsn, truth = scored
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE evaluators SET version = 3 WHERE name = 'judge'")
    try:
        for f in CASES[:2]:
            ids, count, _ = run_async(_all_pages(dsn, Scope.provider(), f, True))
            assert ids == _expected(truth, Scope.provider(), f) and count == len(ids)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE evaluators SET version = 2 WHERE name = 'judge'")


def _probes(dsn: str, f: TicketFilters) -> int:
    """How many times the count's walk probed a score for a newer version (EXPLAIN ANALYZE)."""
    from psycopg import sql

    from collector_api.store.logs.reads import COUNT_CAP, _picks_query

    picks, params, _, _ = _picks_query(Scope.provider(), f)
    query = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM ({} LIMIT %s) c").format(picks)
    with psycopg.connect(dsn) as conn:
        plan = conn.execute(query, [*params, COUNT_CAP + 1]).fetchone()[0][0]["Plan"]

    def walk(node):
        yield node
        for child in node.get("Plans", []):
            yield from walk(child)
    probes = [n for n in walk(plan) if n.get("Relation Name") == "evaluation_scores" and n.get("Alias") == "n"]
    return sum(n.get("Actual Loops", 0) for n in probes)


def test_scores_of_the_current_version_are_not_probed(scored):
    """Only a score of an older version can have a newer one: the 15 current-version (v2) scores of
    "<= 0.5" are counted without a probe, the 40 v1 scores of ">= 0.5" are each probed once."""
    dsn, truth = scored
    assert _probes(dsn, TicketFilters(evaluator="judge", max_score=0.5)) == 0
    assert _probes(dsn, TicketFilters(evaluator="judge", min_score=0.5)) == 40
