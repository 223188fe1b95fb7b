"""The draft excerpt (migration 0028): derived at ingest as the session timeline shows it, given
to logs stored before 0028 by the excerpt-backfill job (PostgreSQL's own `left` agrees with it
character for character), and read from the column, not from the document, by the timeline."""
import copy
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from collector_api.contract.derived import EXCERPT_CHARS, draft_excerpt, excerpt_rows
from collector_api.contract.prepare import Rejected, prepare_row
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.logs import sessions
from collector_api.store.logs.excerpt_backfill import backfill_excerpts
from collector_api.store.logs.writes import insert_workflow_logs
from tests.helpers import run_async
from tests.viewer.helpers import make_log

# Multi-byte and astral characters around the cut: the excerpt counts characters, not bytes.
LONG = "é" * 100 + "🙂" * 100 + "字" * 100 + "tail"
DRAFTS = {"long": LONG, "short": "Hello <b>&amp;</b>", "none": None, "number": 42, "object": {"text": "x"},
          "empty": ""}
DAY = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)


def _doc(client: str, ticket: str, draft) -> dict:
    doc = make_log(client, ticket)
    if draft is None:
        doc["trace"]["output"].pop("draft", None)
    else:
        doc["trace"]["output"]["draft"] = draft
    return doc


def _columns(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT ticket_id, draft_excerpt FROM workflow_logs").fetchall())


def test_the_excerpt_is_the_drafts_first_characters_or_empty():
    assert EXCERPT_CHARS == sessions.EXCERPT_CHARS  # the timeline's fallback cuts where ingest does
    assert draft_excerpt({"trace": {"output": {"draft": LONG}}}) == LONG[:240] and len(LONG[:240]) == 240
    for doc in ({}, {"trace": []}, {"trace": {"output": "x"}}, {"trace": {"output": {"draft": 1.5}}}):
        assert draft_excerpt(doc) == ""


def test_ingest_stores_the_excerpt(db_dsn):
    async def store():
        async with create_pool(db_dsn, max_size=2) as pool:
            for name, draft in DRAFTS.items():
                row = prepare_row(0, _doc("acme", name, draft), "acme", None)
                assert not isinstance(row, Rejected), row
                await insert_workflow_logs(pool, "acme", [row])
    run_async(store())
    assert _columns(db_dsn) == {"long": LONG[:240], "short": DRAFTS["short"], "none": "", "number": "",
                                "object": "", "empty": ""}


def test_the_backfill_gives_older_logs_the_ingest_excerpt_and_leaves_the_rollups_alone(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for i, (name, draft) in enumerate(DRAFTS.items()):
            doc = _doc("acme" if i % 2 else "globex", name, draft)
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                         " VALUES (%s, %s, 'SUCCESS', %s, %s, %s)",  # as stored before 0028: no excerpt
                         (doc["identification"]["client_id"], name, DAY, doc["trace_id"], orjson.dumps(doc).decode()))
        conn.execute("DELETE FROM viewer_rollup_pending")
        # PostgreSQL's cut of the document (the timeline's fallback) is the job's, character for character.
        fallback = dict(conn.execute(
            "SELECT ticket_id, left(CASE WHEN jsonb_typeof(log_data->'trace'->'output'->'draft') = 'string'"
            " THEN log_data->'trace'->'output'->>'draft' END, %s) FROM workflow_logs", (EXCERPT_CHARS,)).fetchall())
    assert set(_columns(db_dsn).values()) == {None}

    async def run():
        async with create_pool(db_dsn) as pool:
            first = await backfill_excerpts(pool, excerpt_rows, batch=2, max_batches=1)
            return first, await backfill_excerpts(pool, excerpt_rows), await backfill_excerpts(pool, excerpt_rows)
    assert run_async(run()) == (2, 4, 0)  # batch by batch, tenant by tenant; an idle run does nothing
    got = _columns(db_dsn)
    expected = {name: draft_excerpt(_doc("acme", name, draft)) for name, draft in DRAFTS.items()}
    assert got == expected
    assert {k: v or None for k, v in got.items()} == {k: v or None for k, v in fallback.items()}
    with psycopg.connect(db_dsn) as conn:  # the excerpt is in no rollup: no day queued for a recompute
        assert conn.execute("SELECT count(*) FROM viewer_rollup_pending").fetchone()[0] == 0


@pytest.mark.parametrize("stored, shown", [("from the column", "from the column"), ("", None), (None, "fallback")])
def test_the_timeline_reads_the_column_and_falls_back_to_the_document(db_dsn, stored, shown):
    doc = _doc("acme", "T-1", "fallback")
    row = prepare_row(0, copy.deepcopy(doc), "acme", None)
    assert not isinstance(row, Rejected) and row.session_key

    async def run():
        async with create_pool(db_dsn, max_size=2) as pool:
            await insert_workflow_logs(pool, "acme", [row])
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                conn.execute("UPDATE workflow_logs SET draft_excerpt = %s", (stored,))
            return await sessions.get_session(pool, Scope.tenant("acme"), row.session_key)
    session = run_async(run())
    assert [t["draft_excerpt"] for t in session.tickets] == [shown]
