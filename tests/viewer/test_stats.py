"""Overview statistics: rollups agree with live aggregation, stay fresh, and keep tenants apart."""
from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta

from collector_api.store.core.db import Scope, create_pool
from collector_api.store.logs.reads import get_stats
from collector_api.store.logs.rollups import refresh_rollups

from .helpers import make_log, run_async, store_logs

TODAY = datetime.combine(datetime.now(UTC).date(), time.min, tzinfo=UTC)
START, END = TODAY - timedelta(days=29), TODAY + timedelta(days=1)


def _stats(dsn, scope, *, rollups, client=None, refresh=False, start=START, end=END):
    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            if refresh:
                await refresh_rollups(pool)
            return await get_stats(pool, scope, start, end, client_id=client, use_rollups=rollups)
    return run_async(go())


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _assert_equal(x, y):
    assert x.totals.keys() == y.totals.keys()
    for k in x.totals:
        assert _same(x.totals[k], y.totals[k]), k
    assert len(x.per_day) == len(y.per_day)
    for a, b in zip(x.per_day, y.per_day, strict=True):
        assert all(_same(a[k], b[k]) for k in a), (a, b)
    assert x.duration_histogram == y.duration_histogram
    nodes = [[(n["node"], n["samples"]) for n in s.node_durations] for s in (x, y)]
    assert nodes[0] == nodes[1]
    assert [c["client_id"] for c in x.per_client] == [c["client_id"] for c in y.per_client]


def test_rollups_equal_live_aggregation(loaded_db):
    dsn = loaded_db[0]
    live = _stats(dsn, Scope.provider(), rollups=False)
    rolled = _stats(dsn, Scope.provider(), rollups=True, refresh=True)
    _assert_equal(live, rolled)
    assert rolled.totals["tickets"] == 8
    for scope, client in ((Scope.tenant("acme"), None), (Scope.provider(), "globex")):
        _assert_equal(_stats(dsn, scope, rollups=False, client=client), _stats(dsn, scope, rollups=True, client=client))
    assert _stats(dsn, Scope.tenant("acme"), rollups=True).totals["tickets"] == 5
    assert _stats(dsn, Scope.tenant("globex"), rollups=True).per_client == []


def test_late_logs_for_past_days_reach_the_rollups(loaded_db):
    dsn = loaded_db[0]
    before = _stats(dsn, Scope.provider(), rollups=True, refresh=True).totals["tickets"]
    store_logs(dsn, [make_log("acme", "LATE-1", days_ago=6), make_log("globex", "LATE-2", days_ago=12)])
    after = _stats(dsn, Scope.provider(), rollups=True, refresh=True)
    assert after.totals["tickets"] == before + 2
    _assert_equal(after, _stats(dsn, Scope.provider(), rollups=False))


def test_p95_is_close_to_the_exact_percentile(db_dsn):
    durations = [0.3, 0.9, 1.5, 2.2, 3.3, 4.1, 4.9, 6.0, 7.5, 9.9, 12.0, 15.5, 18.0, 22.0, 28.0, 35.0, 44.0,
                 58.0, 75.0, 110.0]
    store_logs(db_dsn, [make_log("acme", f"P-{i}", days_ago=1 + i % 5, duration_s=d) for i, d in enumerate(durations)])
    import statistics
    exact = statistics.quantiles(durations, n=100, method="inclusive")[94]
    got = _stats(db_dsn, Scope.provider(), rollups=True, refresh=True).totals["p95_execution_time_s"]
    assert abs(got - exact) / exact < 0.05, (got, exact)


def test_ranges_not_aligned_on_days_are_aggregated_live(loaded_db):
    dsn = loaded_db[0]
    start = datetime.now(UTC) - timedelta(days=2, hours=12)
    stats = _stats(dsn, Scope.provider(), rollups=True, refresh=True, start=start, end=datetime.now(UTC))
    assert stats.totals["tickets"] == 4  # G-1, G-2


def _tickets_on(stats, day) -> int:
    [row] = [r for r in stats.per_day if r["day"] == day.isoformat()]
    return row["success"] + row["partial"] + row["failed"]


def test_days_not_rolled_up_yet_are_aggregated_live(loaded_db):
    """Before any refresh (or right after midnight) the numbers are already right: the days not
    rolled up yet are aggregated live from workflow_logs, the others read from the rollups."""
    dsn = loaded_db[0]
    live = _stats(dsn, Scope.provider(), rollups=False)
    _assert_equal(live, _stats(dsn, Scope.provider(), rollups=True))  # nothing rolled up yet

    async def partial_refresh():
        async with create_pool(dsn, max_size=1) as pool:
            await refresh_rollups(pool, today=(TODAY - timedelta(days=3)).date())  # rolls up to 3 days ago
    run_async(partial_refresh())
    _assert_equal(live, _stats(dsn, Scope.provider(), rollups=True))

    # Two logs stored after that refresh: yesterday was not rolled up, so its new log counts at
    # once (live); six days ago was, so its new log waits for the next refresh (rollups).
    yesterday, six_days_ago = (TODAY - timedelta(days=1)).date(), (TODAY - timedelta(days=6)).date()
    store_logs(dsn, [make_log("acme", "NEW-YESTERDAY", days_ago=1), make_log("globex", "NEW-6-DAYS", days_ago=6)])
    now_live = _stats(dsn, Scope.provider(), rollups=False)
    mixed = _stats(dsn, Scope.provider(), rollups=True)
    assert now_live.totals["tickets"] == live.totals["tickets"] + 2
    assert mixed.totals["tickets"] == live.totals["tickets"] + 1
    assert _tickets_on(mixed, yesterday) == _tickets_on(live, yesterday) + 1 == _tickets_on(now_live, yesterday)
    assert _tickets_on(mixed, six_days_ago) == _tickets_on(live, six_days_ago)
    _assert_equal(now_live, _stats(dsn, Scope.provider(), rollups=True, refresh=True))  # the next refresh
