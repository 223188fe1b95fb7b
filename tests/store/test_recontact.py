"""The recontact rate on a seeded set, computed by hand: live and from the rollup, after a late
ticket, after a change of window, after an erasure's recompute; tenants never mix. And the
session-backfill job gives stored logs the key the ingest path would."""
import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import psycopg

from collector_api.contract.sessions import derive_session_key, session_keys_of
from collector_api.contract.usage_csv import usage_csv
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.logs import rollups
from collector_api.store.logs.recontact import get_recontact
from collector_api.store.logs.session_backfill import backfill_sessions
from collector_api.store.logs.usage import get_usage
from tests.helpers import run_async

DAY0 = (datetime.now(UTC) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
START, END = DAY0, DAY0 + timedelta(days=12)
S1, S2, S3, S5 = (f"email-{c * 32}" for c in "1235")
# (tenant, ticket, session, days after DAY0, hour, resolution)
SEED = [
    ("acme", "t1", S1, 0, 10, "resolved"),    # recontacted by t2, 3 days later
    ("acme", "t2", S1, 3, 9, "unresolved"),   # not resolved: not in the denominator
    ("acme", "t3", S2, 0, 12, "resolved"),    # t4 comes 9 days later: outside 7 days
    ("acme", "t4", S2, 9, 12, "resolved"),    # nothing after it
    ("acme", "t5", S3, 1, 8, "resolved"),     # recontacted only once the LATE ticket t6 arrives
    ("acme", "t7", None, 1, 9, "resolved"),   # no session key: not counted
    ("acme", "t8", S5, 2, 8, "resolved"),     # t9 exactly 7 days later: counts
    ("acme", "t9", S5, 9, 8, "escalated"),
    ("globex", "g1", S2, 1, 0, "resolved"),   # the same key string at another tenant never recontacts acme's t3
]
LATE = ("acme", "t6", S3, 5, 15, "escalated")


def _insert(dsn: str, rows) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for client, ticket, key, days, hour, resolution in rows:
            at = DAY0 + timedelta(days=days, hours=hour)
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                         " resolution_status, session_key) VALUES (%s, %s, 'SUCCESS', %s, %s, '{}', %s, %s)",
                         (client, ticket, at, ticket, resolution, key))


def _read(dsn: str, *, client=None, scope=None, window=7, use_rollups=True):
    async def run():
        async with create_pool(dsn) as pool:
            return await get_recontact(pool, scope or Scope.provider(), START, END, client, window_days=window,
                                       use_rollups=use_rollups)
    return run_async(run())


def _refresh(dsn: str, window: int = 7) -> None:
    async def run():
        async with create_pool(dsn) as pool:
            await rollups.refresh_rollups(pool, recontact_days=window)
    run_async(run())


def _rolled(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(
            "SELECT client_id, (day - %s::date), resolved, recontacted FROM viewer_daily_recontact_rollup",
            (DAY0.date(),)).fetchall()}


def test_the_rate_equals_the_hand_computed_value_including_a_late_ticket(db_dsn):
    _insert(db_dsn, SEED)
    for use_rollups in (False, True):
        if use_rollups:
            _refresh(db_dsn)
        acme = _read(db_dsn, client="acme", use_rollups=use_rollups)
        # resolved with a key: t1 t3 t4 t5 t8 = 5; recontacted: t1, t8 = 2
        assert (acme.totals["resolved"], acme.totals["recontacted"]) == (5, 2)
        assert acme.totals["rate"] == 0.4
        days = {d["day"]: (d["resolved"], d["recontacted"]) for d in acme.per_day}
        assert days[DAY0.date().isoformat()] == (2, 1)
        assert days[(DAY0 + timedelta(days=1)).date().isoformat()] == (1, 0)
    assert _rolled(db_dsn)[("acme", 1)] == (1, 0) and _rolled(db_dsn)[("globex", 1)] == (1, 0)
    # t6 arrives late, on day 5: day 1's t5 becomes recontacted. The refresh sees day 5 changed
    # and recomputes the days before it within the window.
    _insert(db_dsn, [LATE])
    _refresh(db_dsn)
    assert _rolled(db_dsn)[("acme", 1)] == (1, 1)
    for use_rollups in (True, False):
        acme = _read(db_dsn, client="acme", use_rollups=use_rollups)
        assert (acme.totals["resolved"], acme.totals["recontacted"], acme.totals["rate"]) == (5, 3, 0.6)
    # Tenant scope: each sees its own; the provider sees both per client.
    assert _read(db_dsn, scope=Scope.tenant("globex")).totals["recontacted"] == 0
    assert _read(db_dsn, scope=Scope.tenant("globex"), client="acme").totals["resolved"] == 1  # still its own
    both = _read(db_dsn)
    assert both.per_client["acme"]["recontacted"] == 3 and both.per_client["globex"]["resolved"] == 1


def test_another_window_recomputes_every_day_and_readers_never_mix_windows(db_dsn):
    _insert(db_dsn, [*SEED, LATE])
    _refresh(db_dsn, window=7)
    _refresh(db_dsn, window=3)  # FLUSSO_RECONTACT_DAYS changed: t1 (3 days) counts, t5 (4 d) and t8 (7 d) not
    assert _read(db_dsn, client="acme", window=3).totals["recontacted"] == 1
    assert _read(db_dsn, client="acme", window=7).totals["recontacted"] == 3  # live: the rollup has 3 days


def test_recomputing_a_tenants_days_after_an_erasure(db_dsn):
    _insert(db_dsn, [*SEED, LATE])
    _refresh(db_dsn)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM workflow_logs WHERE ticket_id = 't2'")

    async def run():
        async with create_pool(db_dsn) as pool:
            return await rollups.recompute_tenant_recontact(pool, "acme", [(DAY0 + timedelta(days=3)).date()], 7)
    days = run_async(run())
    assert DAY0.date() in days and len(days) == 8
    assert _rolled(db_dsn)[("acme", 0)] == (2, 0)
    assert _read(db_dsn, client="acme").totals["recontacted"] == 2


def test_the_backfill_gives_stored_logs_the_ingest_key(db_dsn):
    ticket = {"ticket_id": "old-1", "requester_email": "[email:0123456789ab]"}
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for i, client in enumerate(("acme", "globex", "acme")):
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                         " session_done) VALUES (%s, %s, 'SUCCESS', %s, %s, %s, NULL)",
                         (client, f"old-{i}", DAY0, f"old-{i}",
                          orjson.dumps({"trace": {"ticket": ticket if i < 2 else {}}}).decode()))

    async def run():
        async with create_pool(db_dsn) as pool:
            first = await backfill_sessions(pool, session_keys_of, batch=2)
            return first, await backfill_sessions(pool, session_keys_of)
    assert run_async(run()) == (3, 0)
    with psycopg.connect(db_dsn) as conn:
        got = dict(conn.execute("SELECT ticket_id, session_key FROM workflow_logs WHERE session_done").fetchall())
    assert got["old-0"] == derive_session_key("acme", "email", "[email:0123456789ab]")
    assert got["old-1"] == derive_session_key("globex", "email", "[email:0123456789ab]") != got["old-0"]
    assert got["old-2"] is None


def test_the_usage_csv_carries_each_tenants_hand_computed_rate(db_dsn):
    _insert(db_dsn, [*SEED, LATE])

    async def report(scope):
        async with create_pool(db_dsn) as pool:
            return await get_usage(pool, scope, START, END)
    for scope, expected in ((Scope.provider(), {"acme": ["5", "3", "0.600000", "7"], "globex": ["1", "0", "0.000000",
                                                                                                "7"]}),
                            (Scope.tenant("globex"), {"globex": ["1", "0", "0.000000", "7"]})):
        text = usage_csv(run_async(report(scope)), _read(db_dsn, scope=scope))
        rows = list(csv.DictReader(io.StringIO(text)))
        got = {r["client_id"]: [r["resolved_in_sessions"], r["recontacted"], r["recontact_rate"], r["recontact_days"]]
               for r in rows if r["model"] == "*"}
        assert got == expected
    # a tenant with no resolved ticket in a session: 0, 0 and an empty rate (not 0)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                     " VALUES ('initech', 'i1', 'SUCCESS', %s, 'i1', '{}')", (DAY0 + timedelta(days=2),))
    text = usage_csv(run_async(report(Scope.provider())), _read(db_dsn))
    [initech] = [r for r in csv.DictReader(io.StringIO(text)) if r["client_id"] == "initech"]
    assert (initech["resolved_in_sessions"], initech["recontacted"], initech["recontact_rate"]) == ("0", "0", "")
