"""Reading reviews: a ticket's history, the review queue, the export (calibration: store.reviews.calibration).

The read side of store.reviews; like store.reads, every statement filters on the tenant AND
runs in a scoped transaction (row-level security). SQL + psycopg only.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition
from collector_api.store.logs.reads import LIST_COLUMNS, TicketFilters, ticket_conditions

_REVIEW_COLUMNS = ("id, client_id, log_id, executed_at, verdict, flags, note, corrected_draft, author, author_kind,"
                   " author_role, created_at")


async def list_reviews(pool: AsyncConnectionPool, scope: Scope, log_id: int) -> list[dict]:
    """Every review of the ticket `log_id` visible in `scope`, newest first (the first is its verdict)."""
    tenant, params = tenant_condition(scope)
    query = sql.SQL("SELECT {columns} FROM ticket_reviews WHERE log_id = %s AND {tenant} ORDER BY id DESC").format(
        columns=sql.SQL(_REVIEW_COLUMNS), tenant=tenant)
    async with scoped_transaction(pool, scope) as conn:
        return await (await conn.execute(query, [log_id, *params])).fetchall()


# FAILED and PARTIAL first, then lowest confidence, then highest hallucination risk, newest
# first: exactly the expressions of workflow_logs_review_queue_idx (migration 0011) and, after the
# tenant, of workflow_logs_client_review_queue_idx (0026).
QUEUE_ORDER = ("(status = 'SUCCESS'), COALESCE(overall_confidence, -1), COALESCE(hallucination_risk, -1) DESC,"
               " executed_at DESC, id DESC")
# OFFSET 0 keeps the NOT EXISTS a per-row probe of ticket_review_state's key: flattened into an anti
# join, the planner sized the policy-filtered review table at 0.5 % of its rows (row-level security's
# tenant test is unknown at plan time) and chose a nested loop over all of it: 2.2 s at 22,000 logs
# instead of 37 ms. A probe per row walked is what the queue's index walk wants at any size.
_UNREVIEWED = sql.SQL("NOT EXISTS (SELECT 1 FROM ticket_review_state s WHERE s.log_id = workflow_logs.id OFFSET 0)")


def queue_query(scope: Scope, filters: TicketFilters, limit: int) -> tuple[sql.Composable, list]:
    """The review queue's statement and parameters: keys first along a queue index (the tenant's
    own, migration 0026, when the filters name one), then the rows (as store.reads.list_tickets)."""
    clauses, params = ticket_conditions(scope, filters)
    where = sql.SQL(" AND ").join([*clauses, _UNREVIEWED])
    query = sql.SQL("WITH page AS (SELECT id, executed_at FROM workflow_logs WHERE {where} ORDER BY {order} LIMIT %s)"
                    " SELECT {columns} FROM workflow_logs JOIN page USING (id, executed_at)"
                    " WHERE {where} ORDER BY {order}").format(where=where, order=sql.SQL(QUEUE_ORDER),
                                                              columns=sql.SQL(LIST_COLUMNS))
    return query, [*params, limit, *params]


async def review_queue(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *,
                       limit: int = 50) -> list[dict]:
    """Tickets without a review that match `filters`, in queue order (at most `limit`)."""
    query, params = queue_query(scope, filters, limit)
    async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
        return await (await conn.execute(query, params)).fetchall()


_EXPORT = ("SELECT s.verdict, s.flags, s.corrected_draft, s.review_count, s.last_review_at, l.*"
           " FROM ticket_review_state s JOIN (SELECT {columns}, log_data #> '{{trace,output,draft}}' AS draft,"
           "  log_data #> '{{trace,ticket}}' AS ticket FROM workflow_logs WHERE {where}) l"
           "  ON l.id = s.log_id AND l.executed_at = s.executed_at"
           " WHERE (%s::timestamptz IS NULL OR (s.executed_at, s.log_id) < (%s, %s))"
           " ORDER BY s.executed_at DESC, s.log_id DESC LIMIT %s")


async def iter_reviewed_tickets(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *,
                                batch: int = 1000) -> AsyncIterator[dict]:
    """Every reviewed ticket matching `filters` once, newest first: its row, stored draft and
    ticket section, latest verdict, flags, corrected draft and review count; in keyset batches."""
    clauses, params = ticket_conditions(scope, filters)
    query = sql.SQL(_EXPORT).format(columns=sql.SQL(LIST_COLUMNS), where=sql.SQL(" AND ").join(clauses))
    after: tuple[Any, Any] = (None, None)
    while True:
        async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
            rows = await (await conn.execute(query, [*params, after[0], *after, batch])).fetchall()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1]["executed_at"], rows[-1]["id"])
