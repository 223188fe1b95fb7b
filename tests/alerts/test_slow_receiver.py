"""A webhook receiver that drips its answer one byte every 2 s: the attempt fails at its TOTAL
deadline (FLUSSO_WEBHOOK_TIMEOUT_S) and is retried later, and meanwhile every other job of the
server (trace assembly, rollups) keeps its interval. Real server, real sockets, real PostgreSQL."""
from __future__ import annotations

import time

import psycopg
import pytest

from collector_api.alerts.targets import parse_allow_list
from collector_api.alerts.webhooks import post_webhook
from tests.alerts.helpers import KEY, Dripper, insert_logs, make_rule
from tests.helpers import LiveServer, make_key, wait_until
from tests.traces.helpers import sdk_provider, support_trace, trace_settings

TIMEOUT_S = 4.0


@pytest.mark.parametrize("drip_body", [False, True], ids=["status-and-headers", "body"])
def test_an_attempt_ends_at_its_total_deadline_however_slowly_bytes_arrive(drip_body):
    with Dripper(every_s=0.5, drip_body=drip_body, body_size=200) as drip:
        started = time.monotonic()
        result = post_webhook(drip.url, b"{}", {}, parse_allow_list(f"127.0.0.1:{drip.port}"), timeout_s=1.5)
        took = time.monotonic() - started
    # Each byte comes 0.5 s after the last: a per-read timeout of 1.5 s never fires, the drip
    # would take 20+ s to finish.
    assert result.http_status is None and "total deadline of 1.5 s" in result.error, result
    assert 1.4 <= took <= 2.5 and 1400 <= result.duration_ms <= 2500, took


def test_a_receiver_that_answers_at_once_is_unaffected():
    with Dripper() as drip:
        drip.fast = True
        result = post_webhook(drip.url, b"{}", {}, parse_allow_list(f"127.0.0.1:{drip.port}"), timeout_s=1.5)
    assert result.ok and result.error is None and result.duration_ms < 1500


def job_successes(dsn: str) -> dict[str, object]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT name, last_ok_at FROM job_runs WHERE last_ok_at IS NOT NULL"))


def attempts(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT a.attempt, a.http_status, a.error, a.duration_ms, d.status,"
                            " extract(epoch FROM d.next_attempt_at - a.at)"
                            " FROM alert_delivery_attempts a JOIN alert_deliveries d ON d.id = a.delivery_id"
                            " ORDER BY a.attempt").fetchall()


def trace_logs(dsn: str, trace_id: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM workflow_logs WHERE trace_id = %s", (trace_id,)).fetchone()[0]


def watch_while_attempt_hangs(dsn: str, trace_id: str, limit_s: float) -> tuple[dict[str, set], bool]:
    """Until the first attempt is recorded: every success of the other jobs seen, and whether the
    trace was assembled in that time."""
    seen: dict[str, set] = {"trace-assembly": set(), "rollup-refresh": set()}
    assembled = False
    deadline = time.monotonic() + limit_s
    while not attempts(dsn):
        assert time.monotonic() < deadline, "the webhook attempt did not end at its deadline"
        for name, at in job_successes(dsn).items():
            if name in seen:
                seen[name].add(at)
        assembled = assembled or trace_logs(dsn, trace_id) == 1
        time.sleep(0.05)
    return seen, assembled


def test_a_dripping_receiver_stalls_no_other_job_and_is_retried(db_dsn):
    insert_logs(db_dsn, "acme", ["FAILED"] * 6)
    key = make_key(db_dsn, "acme")
    with Dripper(every_s=2.0) as drip:
        make_rule(db_dsn, drip.url)
        settings = trace_settings(flusso_rollup_refresh_seconds=0.3, flusso_alert_interval_s=0.5,
                                  flusso_alert_secret_key=KEY, flusso_webhook_allow=f"127.0.0.1:{drip.port}",
                                  flusso_webhook_timeout_s=TIMEOUT_S)
        server = LiveServer(db_dsn, settings).start()
        try:
            assert wait_until(lambda: drip.accepted, 20), "the alert job never called the receiver"
            trace_id = support_trace(sdk_provider(server.url, key), "T-DRIP")
            seen, assembled = watch_while_attempt_hangs(db_dsn, trace_id, TIMEOUT_S + 15)
            first = attempts(db_dsn)[0]
            drip.fast = True  # the receiver recovers; the retry is due after the backoff
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                conn.execute("UPDATE alert_deliveries SET next_attempt_at = now()")
            assert wait_until(lambda: [a[4] for a in attempts(db_dsn)][-1:] == ["delivered"], 20)
        finally:
            server.stop()
    assert assembled, "trace assembly stopped while a webhook hung"
    for name, successes in seen.items():  # several runs of each while the attempt hung ~4 s
        assert len(successes) >= 4, (name, sorted(successes))
        ordered = sorted(successes)
        assert max((b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)) < 1.5, name
    number, status, error, duration_ms, _, backoff_s = first
    assert (number, status) == (1, None) and "total deadline of 4 s" in error, first
    assert TIMEOUT_S * 1000 - 100 <= duration_ms <= TIMEOUT_S * 1000 + 1500, first
    assert 9 <= backoff_s <= 11, first  # retried later, as any failed attempt (RETRY_DELAYS_S[0])
    assert [(a[0], a[1]) for a in attempts(db_dsn)] == [(1, None), (2, 200)]
    assert len(drip.requests) == 2
