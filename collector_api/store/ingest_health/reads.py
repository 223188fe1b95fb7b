"""Ingest health, read side (the provider's /ingest page and /api/v1/ingest-health): per tenant,
for the last 24 hours and 7 days, accepted and rejected logs by reason, the last rejection,
last seen, keys in use and the silent flag. Reads `ingest_counts` (migration 0008, written by
store.ingest_counts) and `api_keys.last_used_at` in a provider-scoped transaction.

Definitions (docs/viewer.md):
- accepted = `stored` + `duplicate` (acknowledged logs); rejected = every other reason code;
  counts are in /metrics' units (records for invalid, tenant_mismatch, refused_by_database,
  db_unavailable; requests for the rest).
- last seen = the latest request the tenant's key got through authentication (accepted or
  rejected) within the 7 days; keys in use = ingest keys that authenticated a request in the window.
- silent = nothing seen for longer than max(1 h, 3 x the median gap between accepted logs over 7
  days). Gaps are measured at the counters' minute resolution: n logs in one minute give n-1 gaps
  of 0; the gap between two minutes with logs is the time between them (lower median).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction

ACCEPTED_REASONS = ("stored", "duplicate")  # the other reasons are the collector's rejection codes
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
SILENT_FLOOR_S = 3600.0
SILENT_FACTOR = 3.0
UNIDENTIFIED = ""  # client_id of requests no key identified (missing or invalid key, overload, drain)

_COUNTS = """
SELECT client_id, reason,
       coalesce(sum(count) FILTER (WHERE minute >= %(since_24h)s), 0)::bigint AS n_24h,
       sum(count)::bigint AS n_7d, max(last_at) AS last_at
FROM ingest_counts WHERE minute >= %(since_7d)s GROUP BY client_id, reason"""

_MEDIAN_GAPS = """
WITH m AS (SELECT client_id, minute, sum(count) AS n FROM ingest_counts
           WHERE minute >= %(since_7d)s AND reason = ANY(%(accepted)s) GROUP BY client_id, minute),
g AS (SELECT client_id, extract(epoch FROM minute - lag(minute) OVER (PARTITION BY client_id ORDER BY minute))
             AS gap, 1::bigint AS w FROM m
      UNION ALL SELECT client_id, 0, n - 1 FROM m WHERE n > 1),
c AS (SELECT client_id, gap, sum(w) OVER (PARTITION BY client_id ORDER BY gap ROWS UNBOUNDED PRECEDING) AS cum,
             sum(w) OVER (PARTITION BY client_id) AS total FROM g WHERE gap IS NOT NULL)
SELECT client_id, min(gap) FILTER (WHERE cum * 2 >= total)::float8 AS median_gap_s FROM c GROUP BY client_id"""

_KEYS = """
SELECT client_id, key_id, last_used_at FROM api_keys
WHERE scope = 'ingest' AND last_used_at >= %(since_7d)s ORDER BY client_id, last_used_at DESC"""


@dataclass
class TenantHealth:
    client_id: str
    accepted: dict[str, int] = field(default_factory=lambda: {w: 0 for w in WINDOWS})
    rejected: dict[str, int] = field(default_factory=lambda: {w: 0 for w in WINDOWS})
    rejected_by_reason: dict[str, dict[str, int]] = field(default_factory=lambda: {w: {} for w in WINDOWS})
    last_rejection_reason: str | None = None
    last_rejection_at: datetime | None = None
    last_seen: datetime | None = None
    keys_in_use: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {w: [] for w in WINDOWS})
    median_gap_s: float | None = None
    silent_after_s: float = SILENT_FLOOR_S
    silent: bool = False


async def read_ingest_health(pool: AsyncConnectionPool, scope: Scope, *,
                             now: datetime | None = None) -> list[TenantHealth]:
    """Every tenant's ingest health (plus '' for unidentified requests, when there were any), by
    tenant id. Provider only: a client scope gets PermissionError (the views answer 404 first)."""
    if not scope.all_tenants:
        raise PermissionError("ingest health is the provider's")
    now = now or datetime.now(UTC)
    since = {w: now - span for w, span in WINDOWS.items()}
    params = {"since_24h": since["24h"], "since_7d": since["7d"], "accepted": list(ACCEPTED_REASONS)}
    async with scoped_transaction(pool, Scope.provider()) as conn:
        tenants = [r["client_id"] for r in await (await conn.execute(
            "SELECT client_id FROM tenants ORDER BY client_id")).fetchall()]
        counts = await (await conn.execute(_COUNTS, params)).fetchall()
        gaps = await (await conn.execute(_MEDIAN_GAPS, params)).fetchall()
        keys = await (await conn.execute(_KEYS, params)).fetchall()
    health = {t: TenantHealth(t) for t in tenants}
    for row in counts:
        _add_count(health.setdefault(row["client_id"], TenantHealth(row["client_id"])), row)
    for row in gaps:
        if row["client_id"] in health:
            health[row["client_id"]].median_gap_s = row["median_gap_s"]
    for row in keys:
        if row["client_id"] in health:
            for window, start in since.items():
                if row["last_used_at"] >= start:
                    health[row["client_id"]].keys_in_use[window].append(
                        {"key_id": row["key_id"], "last_used_at": row["last_used_at"]})
    for item in health.values():
        _judge_silence(item, now)
    return sorted(health.values(), key=lambda h: h.client_id)


def _add_count(item: TenantHealth, row: dict) -> None:
    reason, last_at = row["reason"], row["last_at"]
    values = {"24h": row["n_24h"], "7d": row["n_7d"]}
    if item.last_seen is None or last_at > item.last_seen:
        item.last_seen = last_at
    if reason in ACCEPTED_REASONS:
        for window, n in values.items():
            item.accepted[window] += n
        return
    for window, n in values.items():
        item.rejected[window] += n
        if n:
            item.rejected_by_reason[window][reason] = n
    if item.last_rejection_at is None or last_at > item.last_rejection_at:
        item.last_rejection_at, item.last_rejection_reason = last_at, reason


def _judge_silence(item: TenantHealth, now: datetime) -> None:
    if item.median_gap_s is not None:
        item.silent_after_s = max(SILENT_FLOOR_S, SILENT_FACTOR * item.median_gap_s)
    if item.client_id != UNIDENTIFIED:
        item.silent = item.last_seen is None or (now - item.last_seen).total_seconds() > item.silent_after_s
