"""The recontact rate (read side): of a tenant's tickets resolved on a day, the share whose
session has a later ticket within the recontact window (FLUSSO_RECONTACT_DAYS).

Whole UTC days already rolled up (store.rollups, the only writer of
`viewer_daily_recontact_rollup`) are read from the rollup when it was computed with the same
window; the rest is aggregated live with RECONTACT_LIVE, the SQL the rollup is built with, so
both paths give the same figures. This module never writes. Definition: docs/viewer.md "Sessions".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import TenantCondition, narrowed, tenant_condition
from collector_api.store.logs.stats import range_where, split_rolled, utc_midnight

# Per (tenant, UTC day): tickets resolved with a session key, and those followed by another
# ticket of the same session within %s days (the first parameter). One index probe per
# resolved ticket (workflow_logs_session_idx, migration 0017).
RECONTACT_LIVE = (
    "SELECT t.client_id, (t.executed_at AT TIME ZONE 'UTC')::date AS day, count(*) AS resolved,"
    " count(*) FILTER (WHERE EXISTS (SELECT 1 FROM workflow_logs n WHERE n.client_id = t.client_id"
    " AND n.session_key = t.session_key AND n.executed_at > t.executed_at"
    " AND n.executed_at <= t.executed_at + make_interval(days => %s))) AS recontacted"
    " FROM workflow_logs t WHERE {where} AND t.resolution_status = 'resolved' AND t.session_key IS NOT NULL"
    " GROUP BY 1, 2"
)


def affected_days(ticket_days: list[date], window_days: int) -> list[date]:
    """The UTC days whose recontact figures a ticket on one of `ticket_days` can change: its own
    day (as a resolved ticket) and the `window_days` days before (as the later contact)."""
    days = {d - timedelta(days=i) for d in ticket_days for i in range(window_days + 1)}
    return sorted(days)


def rate(resolved: int, recontacted: int) -> float | None:
    return recontacted / resolved if resolved else None


@dataclass
class Recontact:
    start: datetime
    end: datetime
    window_days: int
    per_day: list[dict] = field(default_factory=list)  # every day of the range: day, resolved, recontacted, rate
    per_client: dict[str, dict] = field(default_factory=dict)  # client -> resolved, recontacted, rate
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "totals": self.totals, "per_day": self.per_day,
                "per_client": [{"client_id": c, **v} for c, v in sorted(self.per_client.items())]}


async def _rolled(conn, tenant: TenantCondition, first: date, stop: date, window_days: int) -> list | None:
    state = await (await conn.execute("SELECT recontact_days FROM viewer_rollup_state WHERE id = 1")).fetchone()
    if state is None or state["recontact_days"] != window_days:
        return None  # computed with another window (or never): aggregate live
    where, params = range_where(tenant, "day", first, stop)
    return await (await conn.execute(
        f"SELECT client_id, day, resolved, recontacted FROM viewer_daily_recontact_rollup WHERE {where}",
        params)).fetchall()


async def _live(conn, tenant: TenantCondition, lo: datetime, hi: datetime, window_days: int) -> list:
    condition, params = tenant
    where = f"{'t.' if params else ''}{condition.as_string()} AND t.executed_at >= %s AND t.executed_at < %s"
    return await (await conn.execute(RECONTACT_LIVE.format(where=where), [window_days, *params, lo, hi])).fetchall()


def _summed(start: datetime, end: datetime, window_days: int, rows: list) -> Recontact:
    by_day: dict[date, list[int]] = {}
    out = Recontact(start, end, window_days)
    for r in rows:
        d = by_day.setdefault(r["day"], [0, 0])
        d[0] += int(r["resolved"])
        d[1] += int(r["recontacted"])
        c = out.per_client.setdefault(r["client_id"], {"resolved": 0, "recontacted": 0})
        c["resolved"] += int(r["resolved"])
        c["recontacted"] += int(r["recontacted"])
    for c in out.per_client.values():
        c["rate"] = rate(c["resolved"], c["recontacted"])
    day, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    while day <= last:
        resolved, recontacted = by_day.get(day, (0, 0))
        out.per_day.append({"day": day.isoformat(), "resolved": resolved, "recontacted": recontacted,
                            "rate": rate(resolved, recontacted)})
        day += timedelta(days=1)
    resolved = sum(v[0] for v in by_day.values())
    recontacted = sum(v[1] for v in by_day.values())
    # The last `window_days` days are still open: a later contact may yet come.
    open_from = datetime.now(UTC).date() - timedelta(days=window_days)
    out.totals = {"resolved": resolved, "recontacted": recontacted, "rate": rate(resolved, recontacted),
                  "provisional_from": open_from.isoformat()}
    return out


async def get_recontact(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                        client_id: str | None = None, *, window_days: int = 7,
                        use_rollups: bool = True) -> Recontact:
    """The recontact figures of tickets resolved in [start, end), per UTC day and per tenant
    (a client scope: its own only; a provider: all, or `client_id`)."""
    tenant = tenant_condition(scope, client_id)
    rows: list = []
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rolled, live = await split_rolled(conn, start, end) if use_rollups else (None, [(start, end)])
        if rolled and rolled[0] < rolled[1]:
            got = await _rolled(conn, tenant, rolled[0], rolled[1], window_days)
            if got is None:
                live = [(utc_midnight(rolled[0]), utc_midnight(rolled[1])), *live]
            else:
                rows += got
        for lo, hi in live:
            rows += await _live(conn, tenant, lo, hi, window_days)
    return _summed(start, end, window_days, rows)
