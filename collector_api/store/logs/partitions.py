"""Monthly partitions of workflow_logs, and retention by partition."""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from typing import NamedTuple

import psycopg
from psycopg import sql

from collector_api.store.core import locks

logger = logging.getLogger(__name__)

PARTITIONED_TABLES = ("workflow_logs",)
_LZ4_MISSING_LOGGED = False


class Partition(NamedTuple):
    table: str
    name: str
    start: date
    end: date


def month_start(day: date, offset: int = 0) -> date:
    index = day.year * 12 + (day.month - 1) + offset
    return date(index // 12, index % 12 + 1, 1)


def maintain_partitions(dsn: str) -> list[str]:
    """Partition upkeep on a connection of its own (blocking: run it in a thread from async code)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return ensure_partitions(conn)


def ensure_partitions(conn: psycopg.Connection, *, first: date | None = None, months_ahead: int = 3) -> list[str]:
    """Create monthly partitions from `first` (default: last month) to `months_ahead` months ahead.

    Runs under an advisory lock so concurrent replicas don't race. Rows already in the DEFAULT
    partition for a month being created are moved into the new partition in the same transaction.
    """
    today = datetime.now(UTC).date()
    start = month_start(first or today, 0 if first else -1)
    stop = month_start(today, months_ahead + 1)
    created = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.PARTITIONS,))
        existing = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = ANY(%s)", (list(PARTITIONED_TABLES),))}
        month = start
        while month < stop:
            nxt = month_start(month, 1)
            for table in PARTITIONED_TABLES:
                name = f"{table}_{month:%Y_%m}"
                if name not in existing:
                    _create_partition(conn, table, name, month, nxt)
                    created.append(name)
            month = nxt
    if created:
        logger.info("created partitions %s", ", ".join(created))
    return created


def _create_partition(conn: psycopg.Connection, table: str, name: str, start: date, end: date) -> None:
    parent, part, default = sql.Identifier(table), sql.Identifier(name), sql.Identifier(f"{table}_default")
    # A new range may not overlap rows sitting in DEFAULT, so they move into the new partition.
    # EXCLUSIVE blocks concurrent inserts into DEFAULT (reads go on) until COMMIT: no row can
    # land there between the move and the CREATE, so nothing acknowledged is lost.
    conn.execute(sql.SQL("LOCK TABLE {d} IN EXCLUSIVE MODE").format(d=default))
    conn.execute(sql.SQL("CREATE TEMP TABLE _moved ON COMMIT DROP AS SELECT * FROM {d} WITH NO DATA").format(d=default))
    conn.execute(sql.SQL("WITH m AS (DELETE FROM {d} WHERE executed_at >= %s AND executed_at < %s RETURNING *)"
                         " INSERT INTO _moved SELECT * FROM m").format(d=default), (start, end))
    conn.execute(sql.SQL("CREATE TABLE {p} PARTITION OF {t} FOR VALUES FROM ({s}) TO ({e})").format(
        p=part, t=parent, s=sql.Literal(start.isoformat()), e=sql.Literal(end.isoformat())))
    # Straight into the new partition: the parent's FORCE ROW LEVEL SECURITY would hold the
    # owner (who runs this, across tenants) to its policies; a partition has none of its own.
    conn.execute(sql.SQL("INSERT INTO {p} SELECT * FROM _moved").format(p=part))
    conn.execute("DROP TABLE _moved")
    if table == "workflow_logs":
        _set_lz4(conn, part)


def _set_lz4(conn: psycopg.Connection, part: sql.Identifier) -> None:
    try:
        with conn.transaction():
            conn.execute(sql.SQL("ALTER TABLE {p} ALTER COLUMN log_data SET COMPRESSION lz4").format(p=part))
    except psycopg.errors.FeatureNotSupported:
        global _LZ4_MISSING_LOGGED
        if not _LZ4_MISSING_LOGGED:
            _LZ4_MISSING_LOGGED = True
            logger.info("this PostgreSQL was built without lz4; log_data keeps the default compression (pglz)")


def list_partitions(conn: psycopg.Connection) -> list[Partition]:
    rows = conn.execute(
        "SELECT p.relname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE p.relname = ANY(%s) ORDER BY c.relname", (list(PARTITIONED_TABLES),)).fetchall()
    result = []
    for table, name, bound in rows:
        if "DEFAULT" in bound:
            continue
        suffix = name[len(table) + 1:]
        year, month = int(suffix[:4]), int(suffix[5:7])
        start = date(year, month, 1)
        result.append(Partition(table, name, start, month_start(start, 1)))
    return result


def drop_partitions_before(conn: psycopg.Connection, cutoff: date) -> list[str]:
    """Drop whole monthly partitions that end on or before `cutoff` (retention), and DEFAULT's rows
    dated before it; DEFAULT itself stays."""
    dropped = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.PARTITIONS,))
        for part in list_partitions(conn):
            if part.end <= cutoff:
                conn.execute(sql.SQL("DROP TABLE {p}").format(p=sql.Identifier(part.name)))
                dropped.append(part.name)
                if part.table == "workflow_logs":
                    _drop_reviews(conn, part)
        # Rows dated before the oldest partition sit in DEFAULT (upkeep never creates months
        # in the past): retention removes them too. The owner's policy (migration 0005) lets
        # this cross-tenant DELETE through FORCE ROW LEVEL SECURITY.
        for table in PARTITIONED_TABLES:
            cur = conn.execute(sql.SQL("DELETE FROM {d} WHERE executed_at < %s").format(
                d=sql.Identifier(f"{table}_default")), (cutoff,))
            if cur.rowcount:
                logger.info("retention deleted %d rows dated before %s from %s_default", cur.rowcount, cutoff, table)
    return dropped


def _drop_reviews(conn: psycopg.Connection, part: Partition) -> None:
    """Reviews and evaluation results follow the logs' retention (they have no foreign key to the
    partitioned table): the month's go with its logs, in the same transaction."""
    for table in ("ticket_reviews", "ticket_review_state", "evaluation_scores", "evaluation_outcomes"):
        conn.execute(sql.SQL("DELETE FROM {t} WHERE executed_at >= %s AND executed_at < %s").format(
            t=sql.Identifier(table)), (part.start, part.end))
