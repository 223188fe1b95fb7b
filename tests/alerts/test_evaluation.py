"""Evaluation and delivery against real PostgreSQL and a real loopback receiver: one signed
notification per transition, retries with backoff logged, refusals by FLUSSO_WEBHOOK_ALLOW."""
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.alerts.targets import AllowListError, parse_allow_list
from collector_api.store.alerts import deliveries as alert_deliveries
from collector_api.store.alerts.evaluation import window_start
from collector_api.store.core.db import create_pool
from tests.alerts.helpers import make_rule, tick
from tests.helpers import run_async

from .helpers import Receiver, insert_logs, verify


def run(dsn, fn):
    async def go():
        async with create_pool(dsn) as pool:
            return await fn(pool)
    return run_async(go())


def test_fires_once_resolves_once_each_signed(db_dsn):
    insert_logs(db_dsn, "acme", ["FAILED"] * 6 + ["SUCCESS"] * 2)
    insert_logs(db_dsn, "globex", ["SUCCESS"] * 8)  # judged on its own: stays quiet
    with Receiver() as rx:
        new = make_rule(db_dsn, rx.url, min_tickets=5)
        allow = f"127.0.0.1:{rx.port}"
        report = tick(db_dsn, allow)
        assert (report.transitions, report.delivered) == (1, 1)
        assert tick(db_dsn, allow).transitions == 0  # still firing: no second notification
        insert_logs(db_dsn, "acme", ["SUCCESS"] * 20)
        assert tick(db_dsn, allow).transitions == 1
        assert tick(db_dsn, allow).transitions == 0
        assert [p["state"] for p in rx.payloads()] == ["firing", "resolved"]
        for req in rx.requests:
            assert verify(new.secret, req["headers"], req["body"])
            assert not verify("whsec_wrong", req["headers"], req["body"])
        ids = {r["headers"]["X-Flusso-Delivery"] for r in rx.requests}
        assert len(ids) == 2
        first = rx.payloads()[0]
        assert first["tenant"] == "acme" and first["metric"] == "failure_rate" and first["window"] == "15m"
        assert first["value"] == pytest.approx(0.75) and first["threshold"] == 0.5
        assert first["rule"]["name"] == "failures"
        assert first["link"].startswith("https://obs.example.com/tickets?client=acme&")
        assert "status=FAILED" in first["link"]


def test_min_tickets_keeps_a_small_sample_quiet(db_dsn):
    insert_logs(db_dsn, "acme", ["FAILED"] * 3)
    with Receiver() as rx:
        make_rule(db_dsn, rx.url, min_tickets=4)
        assert tick(db_dsn, f"127.0.0.1:{rx.port}").transitions == 0
        insert_logs(db_dsn, "acme", ["FAILED"])
        assert tick(db_dsn, f"127.0.0.1:{rx.port}").transitions == 1


def test_retries_with_backoff_and_every_attempt_is_logged(db_dsn, monkeypatch):
    monkeypatch.setattr(alert_deliveries, "RETRY_DELAYS_S", (0, 0, 0, 0, 0))
    insert_logs(db_dsn, "acme", ["FAILED"] * 3)
    with Receiver(codes=[500, 302], location="http://127.0.0.1:1/elsewhere") as rx:
        make_rule(db_dsn, rx.url)
        allow = f"127.0.0.1:{rx.port}"
        assert tick(db_dsn, allow).delivered == 0  # 500
        assert tick(db_dsn, allow).delivered == 0  # 302: not followed
        assert tick(db_dsn, allow).delivered == 1
        assert len(rx.requests) == 3 and len({r["headers"]["X-Flusso-Delivery"] for r in rx.requests}) == 1
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute("SELECT attempt, http_status, error FROM alert_delivery_attempts"
                            " ORDER BY attempt").fetchall()
        status = conn.execute("SELECT status FROM alert_deliveries").fetchone()[0]
    assert [r[:2] for r in rows] == [(1, 500), (2, 302), (3, 200)]
    assert "not followed" in rows[1][2] and status == "delivered"


def test_backoff_waits_before_the_next_attempt(db_dsn):
    insert_logs(db_dsn, "acme", ["FAILED"] * 3)
    with Receiver(codes=[503]) as rx:
        make_rule(db_dsn, rx.url)
        tick(db_dsn, f"127.0.0.1:{rx.port}")
        tick(db_dsn, f"127.0.0.1:{rx.port}")
        assert len(rx.requests) == 1  # next attempt only after RETRY_DELAYS_S[0]
    with psycopg.connect(db_dsn) as conn:
        wait = conn.execute("SELECT next_attempt_at - now() FROM alert_deliveries").fetchone()[0]
    assert timedelta(seconds=5) < wait <= timedelta(seconds=alert_deliveries.RETRY_DELAYS_S[0])


@pytest.mark.parametrize("allow", ["", "127.0.0.1:1", "10.0.0.0/8", "localhost", "example.com:{port}"])
def test_targets_not_allowed_are_refused_at_send_time(db_dsn, allow):
    insert_logs(db_dsn, "acme", ["FAILED"] * 3)
    with Receiver() as rx:
        make_rule(db_dsn, rx.url)
        tick(db_dsn, allow.format(port=rx.port))
        assert rx.requests == []
    with psycopg.connect(db_dsn) as conn:
        error = conn.execute("SELECT error FROM alert_delivery_attempts").fetchone()[0]
    assert "FLUSSO_WEBHOOK_ALLOW" in error


def test_a_cidr_allows_the_resolved_address(db_dsn):
    insert_logs(db_dsn, "acme", ["FAILED"] * 3)
    with Receiver() as rx:
        make_rule(db_dsn, rx.url.replace("127.0.0.1", "localhost"))  # the name resolves to loopback
        assert tick(db_dsn, "127.0.0.0/8").delivered == 1


def test_allow_list_parsing():
    allow = parse_allow_list(" hooks.example.com:443 , 10.0.0.0/8, [::1]:8080, 127.0.0.1")
    assert allow.allows("hooks.example.com", 443, "93.184.216.34")
    assert not allow.allows("hooks.example.com", 80, "93.184.216.34")
    assert not allow.allows("hooks.example.com", 443, "169.254.169.254")  # metadata, even by name
    assert allow.allows("anything", 9, "10.1.2.3") and allow.allows("x", 8080, "::1")
    assert allow.allows("127.0.0.1", 5, "127.0.0.1") and not allow.allows("evil", 5, "127.0.0.2")
    for bad in ("10.0.0.0/33", "host:0", "host:http", ":80"):
        with pytest.raises(AllowListError, match="FLUSSO_WEBHOOK_ALLOW"):
            parse_allow_list(bad)


def test_window_buckets():
    now = datetime(2026, 12, 1, 12, 3, 30, tzinfo=UTC)
    assert window_start(now, 300) == ("m", datetime(2026, 12, 1, 11, 59, tzinfo=UTC))
    assert window_start(now, 86400) == ("h", datetime(2026, 11, 30, 13, tzinfo=UTC))
