"""Creating and deleting datasets: copies of a tenant's tickets, made in ONE statement.

A dataset's items are copied by `INSERT ... SELECT` from the stored logs (and the review state)
in the transaction that creates the dataset, scoped to the tenant (row-level security): 10,000
items cost one statement, no Python loop. The selection is the ticket search's own WHERE
(`store.logs.reads.ticket_conditions`), the review queue's, or a list of log ids. A dataset that
would be empty is not created. SQL + psycopg only.
"""
from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, StoreError, scoped_transaction
from collector_api.store.logs.reads import TicketFilters, ticket_conditions
from collector_api.store.reviews.reads import QUEUE_ORDER

MAX_ITEMS = 50_000  # items of one dataset
MAX_IDS = 10_000  # log ids of one request
MAX_DATASETS = 500  # datasets of one tenant


class DatasetError(StoreError):
    status = 400
    field = "name"


class DatasetExists(DatasetError):
    status = 409

    def __init__(self, name: str) -> None:
        super().__init__(f"name: a dataset named {name!r} already exists")


class NothingMatched(DatasetError):
    status = 404
    field = "source"

    def __init__(self) -> None:
        super().__init__("no ticket of this tenant matches: the dataset was not created")


class TooManyDatasets(DatasetError):
    status = 409

    def __init__(self) -> None:
        super().__init__(f"this tenant already has {MAX_DATASETS} datasets: delete one first")


@dataclass(frozen=True)
class Selection:
    """Which tickets become items: `filters` of the ticket search (newest first), the same filters
    over the review queue (unreviewed, in queue order), or `log_ids`; at most `limit`."""

    source: str  # search | queue | ids
    filters: TicketFilters | None = None
    log_ids: tuple[int, ...] = ()
    limit: int = MAX_ITEMS
    query: str = ""  # what to show of the source (the search's query string)


# An item: the stored ticket section (redacted by the client; customer messages as stored) with
# its ticket id, the expected output (latest corrected draft, else the stored draft), the verdict.
_ITEMS = (
    "INSERT INTO dataset_items (client_id, dataset_id, log_id, ticket_id, executed_at, status, input,"
    " expected_output, expected_source, verdict, flags)"
    " SELECT l.client_id, %s, l.id, l.ticket_id, l.executed_at, l.status,"
    "  CASE WHEN jsonb_typeof(l.log_data #> '{{trace,ticket}}') = 'object'"
    "   THEN l.log_data #> '{{trace,ticket}}' ELSE '{{}}'::jsonb END || jsonb_build_object('ticket_id', l.ticket_id),"
    "  COALESCE(s.corrected_draft, l.log_data #>> '{{trace,output,draft}}'),"
    "  CASE WHEN s.corrected_draft IS NOT NULL THEN 'corrected'"
    "   WHEN l.log_data #>> '{{trace,output,draft}}' IS NOT NULL THEN 'draft' ELSE 'none' END,"
    "  s.verdict, COALESCE(s.flags, '{{}}')"
    " FROM (SELECT id, client_id, ticket_id, executed_at, status, overall_confidence, hallucination_risk, log_data"
    "  FROM workflow_logs"
    "  WHERE {where} ORDER BY {order} LIMIT %s) l"
    " LEFT JOIN ticket_review_state s ON s.log_id = l.id AND s.client_id = l.client_id"
    " ORDER BY {outer}"
)
_UNREVIEWED = "NOT EXISTS (SELECT 1 FROM ticket_review_state s WHERE s.log_id = workflow_logs.id)"
_NEWEST = "executed_at DESC, id DESC"


def _items_query(client_id: str, dataset_id: int, selection: Selection) -> tuple[sql.Composable, list]:
    """The INSERT ... SELECT of `selection`'s items (item ids follow the selection's order)."""
    order, outer = _NEWEST, "l.executed_at DESC, l.id DESC"
    if selection.source == "ids":
        where, params = sql.SQL("client_id = %s AND id = ANY(%s::int8[])"), [client_id, list(selection.log_ids)]
    else:
        clauses, params = ticket_conditions(Scope.tenant(client_id), selection.filters or TicketFilters())
        if selection.source == "queue":
            clauses = [*clauses, sql.SQL(_UNREVIEWED)]
            order = QUEUE_ORDER
            outer = ("(l.status = 'SUCCESS'), COALESCE(l.overall_confidence, -1),"
                     " COALESCE(l.hallucination_risk, -1) DESC, l.executed_at DESC, l.id DESC")
        where = sql.SQL(" AND ").join(clauses)
    query = sql.SQL(_ITEMS).format(where=where, order=sql.SQL(order), outer=sql.SQL(outer))
    return query, [dataset_id, *params, min(selection.limit, MAX_ITEMS)]


async def create_dataset(pool: AsyncConnectionPool, client_id: str, name: str, selection: Selection,
                         created_by: str) -> dict:
    """Create the dataset `name` of `client_id` with its items copied from `selection`, in one
    transaction; returns its row. DatasetExists (409), TooManyDatasets (409), NothingMatched (404)."""
    async with scoped_transaction(pool, Scope.tenant(client_id)) as conn:
        count = await (await conn.execute("SELECT count(*) AS n FROM datasets WHERE client_id = %s"
                                          " AND deleted_at IS NULL", [client_id])).fetchone()
        if count["n"] >= MAX_DATASETS:
            raise TooManyDatasets()
        try:
            async with conn.transaction():
                row = await (await conn.execute(
                    "INSERT INTO datasets (client_id, name, source, source_query, created_by)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id", [client_id, name, selection.source,
                                                                  selection.query[:2000], created_by])).fetchone()
        except psycopg.errors.UniqueViolation:
            raise DatasetExists(name) from None
        query, params = _items_query(client_id, row["id"], selection)
        cur = await conn.execute(query, params)
        if cur.rowcount == 0:
            raise NothingMatched()
        return await (await conn.execute(
            "UPDATE datasets SET item_count = %s WHERE id = %s AND client_id = %s RETURNING *",
            [cur.rowcount, row["id"], client_id])).fetchone()


@dataclass(frozen=True)
class Deleted:
    """What deleting a dataset did: `experiments` (their names, oldest first) were run on it, so
    its `items` stay as their snapshot (the dataset is marked deleted); none: it is gone with them."""

    items: int
    experiments: list[str]


async def delete_dataset(pool: AsyncConnectionPool, client_id: str, name: str) -> Deleted | None:
    """Delete the dataset `name` of `client_id` (None when there is none). Without experiments it
    goes with its items; with experiments it is marked deleted and its items stay, so the
    experiments stay viewable (docs/experiments.md). Its experiments' logs stay either way."""
    async with scoped_transaction(pool, Scope.tenant(client_id)) as conn:
        row = await (await conn.execute(
            "SELECT id, item_count FROM datasets WHERE client_id = %s AND name = %s AND deleted_at IS NULL"
            " FOR UPDATE", [client_id, name])).fetchone()
        if row is None:
            return None
        runs = await (await conn.execute(
            "SELECT name FROM experiments WHERE client_id = %s AND dataset_id = %s ORDER BY created_at, id",
            [client_id, row["id"]])).fetchall()
        if runs:
            await conn.execute("UPDATE datasets SET deleted_at = now() WHERE id = %s AND client_id = %s",
                               [row["id"], client_id])
        else:
            await conn.execute("DELETE FROM datasets WHERE id = %s AND client_id = %s", [row["id"], client_id])
        return Deleted(row["item_count"], [r["name"] for r in runs])


# Erasure (collector_api.store.erasure.targets runs it for every batch of erased logs): every item
# copied from those logs or tickets, each dataset's item_count kept true; its rowcount is the
# number of items deleted. Named parameters: the erasure's (%(client)s, %(log_ids)s, %(ticket_ids)s).
ERASE_ITEMS = (
    "WITH gone AS (DELETE FROM dataset_items WHERE client_id = %(client)s"
    " AND (log_id = ANY(%(log_ids)s::int8[]) OR ticket_id = ANY(%(ticket_ids)s::text[])) RETURNING dataset_id),"
    " counted AS (UPDATE datasets d SET item_count = d.item_count - g.n"
    " FROM (SELECT dataset_id, count(*) AS n FROM gone GROUP BY dataset_id) g"
    " WHERE d.id = g.dataset_id AND d.client_id = %(client)s RETURNING 1)"
    " SELECT 1 FROM gone"
)


async def delete_items_of_tickets(conn: psycopg.AsyncConnection, client_id: str, log_ids: list[int],
                                  ticket_ids: list[str]) -> int:
    """Delete every dataset item copied from these logs or tickets of `client_id`, inside the
    caller's (tenant-scoped) transaction (ERASE_ITEMS); returns the items deleted."""
    cur = await conn.execute(ERASE_ITEMS, {"client": client_id, "log_ids": log_ids, "ticket_ids": ticket_ids})
    return cur.rowcount
