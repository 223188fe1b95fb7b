"""Erasure tests: a server with a receipt key, logs that carry a customer's tokens, and a scan of
every table of the database for a value."""
from __future__ import annotations

import copy
import json
import secrets

import psycopg
from psycopg import sql

from config.server import ServerSettings
from otel_bridge.pii import Redactor
from tests.collector.helpers import make_log
from tests.helpers import score_rollups

RECEIPT_KEY = "receipt-key-" + "r" * 40
PII_KEY = "client-pii-key-" + "p" * 40  # the client's PII_HASH_KEY (the bridge's)
SERVER_PII_KEY = "server-pii-key-" + "s" * 40  # FLUSSO_PII_HASH_KEY (/v1/traces)


def erase_settings(**overrides) -> ServerSettings:
    values = {"flusso_session_secret": "erasure-session-" + "x" * 32, "flusso_receipt_key": RECEIPT_KEY,
              "flusso_pii_hash_key": SERVER_PII_KEY, "flusso_tenant_rate_limit_per_s": 0,
              "flusso_rollup_refresh_seconds": 0, "flusso_alert_interval_s": 0,
              "flusso_retention_interval_s": 0, **overrides}
    return ServerSettings(_env_file=None, **values)


def customer_log(client: str, ticket: str, email: str | None = None, name: str | None = None,
                 key: str = PII_KEY) -> dict:
    """A legacy workflow log as the bridge ships it: the customer's email and name as tokens in
    ticket fields and inside the draft's free text."""
    log = make_log(client, ticket)
    for k in ("schema_version", "trace_id"):
        log.pop(k)
    log["trace"].pop("spans")
    r = Redactor(key)
    if email:
        log["ticket_info"]["requester_email"] = r.token("email", email)
    if name:
        log["ticket_info"]["requester_name"] = r.token("name", name)
        log["trace"]["draft"] = {"text": f"Hello {r.token('name', name)}, your order ships today."}
    return copy.deepcopy(log)


def post_log(client, key: str, log: dict, idempotency: str | None = None):
    headers = {"X-API-Key": key, **({"Idempotency-Key": idempotency} if idempotency else {})}
    return client.post("/api/v1/logs", content=json.dumps(log), headers={**headers,
                                                                          "Content-Type": "application/json"})


def request_id() -> str:
    return "req-" + secrets.token_hex(6)


def scan_everything(dsn: str, needles: list[str]) -> list[tuple[str, str, str | None]]:
    """(table, column, client_id or None) of every row of every table whose text, jsonb, text[] or
    bytea column contains one of `needles` (bytea: as UTF-8 bytes)."""
    hits = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        columns = conn.execute(
            "SELECT c.table_name, c.column_name, c.data_type, c.udt_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
            " AND (c.data_type IN ('text', 'jsonb', 'bytea', 'character varying', 'json') OR c.udt_name = '_text')"
        ).fetchall()
        with_client = {t for (t,) in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND column_name = 'client_id'").fetchall()}
        for table, column, dtype, _udt in columns:
            col, tab = sql.Identifier(column), sql.Identifier(table)
            found = sql.SQL("position(convert_to(%s, 'UTF8') IN {c}) > 0" if dtype == "bytea"
                            else "strpos({c}::text, %s) > 0").format(c=col)
            who = sql.SQL("client_id::text" if table in with_client else "NULL::text")
            for needle in needles:
                rows = conn.execute(sql.SQL("SELECT {w} FROM ONLY {t} WHERE {f}").format(w=who, t=tab, f=found),
                                    (needle,)).fetchall()
                hits += [(table, column, r[0]) for r in rows]
    return hits


def bulk_logs(dsn: str, client: str, n: int, *, prefix: str = "T-", days_ago: float = 0.0, start: int = 0) -> None:
    """`n` small workflow logs of `client` (tickets prefix0..), written by SQL for volume (the trigger
    that refuses erased tickets runs on them as on any store)."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
            " SELECT %(c)s, %(p)s || g, 'SUCCESS', now() - make_interval(secs => %(ago)s * 86400 + g %% 3600),"
            " md5(%(c)s || %(p)s || g), jsonb_build_object('ticket_info', jsonb_build_object('ticket_id', %(p)s || g))"
            " FROM generate_series(%(s)s, %(s)s + %(n)s - 1) g",
            {"c": client, "p": prefix, "ago": days_ago, "n": n, "s": start})


def count_logs(dsn: str, client: str, prefix: str | None = None) -> int:
    with psycopg.connect(dsn) as conn:
        if prefix is None:
            return conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = %s", (client,)).fetchone()[0]
        return conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = %s AND ticket_id LIKE %s",
                            (client, prefix + "%")).fetchone()[0]


_CALIBRATION_FRESH = (
    "SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day,"
    " LEAST(floor(overall_confidence * 10), 9) AS bucket, count(*) AS n,"
    " count(*) FILTER (WHERE verdict = 'correct') AS correct FROM ticket_review_state"
    " WHERE overall_confidence BETWEEN 0 AND 1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
_CALIBRATION_ROLLED = "SELECT client_id, day, bucket, n, correct FROM review_calibration_daily ORDER BY 1, 2, 3"
_RISK_FRESH = ("SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day, hallucination_risk,"
               " count(*) FILTER (WHERE 'hallucination' = ANY (flags)), count(*) FILTER (WHERE NOT 'hallucination'"
               " = ANY (flags)) FROM ticket_review_state WHERE hallucination_risk IS NOT NULL GROUP BY 1, 2, 3"
               " ORDER BY 1, 2, 3")
_RISK_ROLLED = "SELECT client_id, day, risk, flagged, unflagged FROM review_risk_daily ORDER BY 1, 2, 3"
_RISK_MONTHLY = ("SELECT client_id, month, risk, flagged::bigint, unflagged::bigint FROM review_risk_monthly"
                 " ORDER BY 1, 2, 3")
_RISK_BY_MONTH = ("SELECT client_id, date_trunc('month', day)::date, risk, sum(flagged), sum(unflagged)"
                  " FROM review_risk_daily GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")


def calibration_rollup(dsn: str) -> list[tuple]:
    """The calibration rollup rows (migration 0021), after checking they equal a fresh aggregate
    of ticket_review_state (what the triggers must keep them at), as the evaluator rollups
    (migration 0024) must equal theirs."""
    score_rollups(dsn)
    with psycopg.connect(dsn) as conn:
        rolled = conn.execute(_CALIBRATION_ROLLED).fetchall()
        fresh = conn.execute(_CALIBRATION_FRESH).fetchall()
        assert [(*r[:2], *map(int, r[2:])) for r in rolled] == [(*r[:2], *map(int, r[2:])) for r in fresh]
        assert conn.execute(_RISK_ROLLED).fetchall() == conn.execute(_RISK_FRESH).fetchall()
        assert conn.execute(_RISK_MONTHLY).fetchall() == conn.execute(_RISK_BY_MONTH).fetchall()
        return rolled
