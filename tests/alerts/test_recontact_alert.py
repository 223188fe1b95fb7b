"""The alert metric recontact_rate: judged per tenant from the recontact rollup over the rule's
window (whole UTC days), min_tickets counting resolved tickets; the link opens the sessions
that came back."""
from datetime import UTC, datetime, timedelta

import psycopg

from collector_api.alerts.rules import AlertRuleError, validate_rule
from collector_api.store.logs import rollups

from .helpers import Receiver, make_rule, run, tick


def _tickets(dsn, client, rows):
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (client,))
        for i, (session, hours_ago, resolution) in enumerate(rows):
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                         " resolution_status, session_key) VALUES (%s, %s, 'SUCCESS', %s, %s, '{}', %s, %s)",
                         (client, f"R-{i}", now - timedelta(hours=hours_ago), f"{client}-r-{i}", resolution,
                          f"email-{session * 32}"))


def test_recontact_rate_fires_for_the_tenant_whose_customers_come_back(db_dsn):
    # acme: 4 resolved, 3 of them followed by another ticket of the same customer -> 0.75
    _tickets(db_dsn, "acme", [("a", 30, "resolved"), ("a", 20, "escalated"), ("b", 30, "resolved"),
                              ("b", 5, "resolved"), ("c", 40, "resolved"), ("c", 2, "unresolved")])
    # globex: 4 resolved, none came back
    _tickets(db_dsn, "globex", [(s, 10, "resolved") for s in "defg"])
    run(db_dsn, lambda pool: rollups.refresh_rollups(pool, recontact_days=7))
    with Receiver() as rx:
        make_rule(db_dsn, rx.url, metric="recontact_rate", op=">", threshold=0.5, window="3d", min_tickets=4)
        assert tick(db_dsn, f"127.0.0.1:{rx.port}").transitions == 1
        [payload] = rx.payloads()
    assert payload["tenant"] == "acme" and payload["metric"] == "recontact_rate"
    assert payload["value"] == 0.75
    assert "/sessions?" in payload["link"] and "recontacted=yes" in payload["link"]


def test_min_tickets_counts_resolved_tickets_and_thresholds_are_fractions(db_dsn):
    _tickets(db_dsn, "acme", [("a", 30, "resolved"), ("a", 20, "resolved")])  # 1 of 2 came back
    run(db_dsn, lambda pool: rollups.refresh_rollups(pool, recontact_days=7))
    with Receiver() as rx:
        make_rule(db_dsn, rx.url, metric="recontact_rate", op=">", threshold=0.1, window="3d", min_tickets=3)
        assert tick(db_dsn, f"127.0.0.1:{rx.port}").transitions == 0  # 2 resolved < 3: nothing to judge
    try:
        validate_rule(name="x", metric="recontact_rate", op=">", threshold=5, window="1d", client_id=None,
                      webhook_url="https://hooks.example.com/x")
    except AlertRuleError as exc:
        assert exc.field == "threshold"
    else:
        raise AssertionError("a rate threshold above 1 was accepted")
