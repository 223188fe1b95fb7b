"""`flusso-obs tenants set --ticket-attribute`: the tenant's span attribute names the ticket."""
from __future__ import annotations

import secrets

from tests.cli.helpers import cli
from tests.helpers import make_key

from .helpers import agent_trace, post, request, wait_for_logs


def test_ticket_attribute_per_tenant(traces_server, db_dsn):
    key = make_key(db_dsn, "acme")
    done = cli("tenants", "set", "--client", "acme", "--ticket-attribute", "app.ticket", dsn=db_dsn)
    assert done.returncode == 0, done.stderr
    missing = cli("tenants", "set", "--client", "nobody", "--ticket-attribute", "x", dsn=db_dsn)
    assert missing.returncode == 2 and "no tenant" in missing.stderr
    post(traces_server, key, request(*agent_trace(secrets.token_bytes(16), ticket="T-default", app__ticket="Z-42")))
    [row] = wait_for_logs(db_dsn, 1)
    assert row["ticket_id"] == "Z-42"
    assert cli("tenants", "set", "--client", "acme", "--ticket-attribute", "", dsn=db_dsn).returncode == 0
    session = agent_trace(secrets.token_bytes(16), ticket="")
    post(traces_server, key, request(*session[:2], *agent_trace(session[0].trace_id, ticket="",
                                                                    session__id="S-7")[2:]))
    rows = wait_for_logs(db_dsn, 2)
    assert rows[1]["ticket_id"] == "S-7"
