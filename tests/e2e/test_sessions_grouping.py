"""Sessions end to end: tickets of one requester sent through the real bridge group into one
session; a ticket with an explicit conversation id forms its own; the same email at another
tenant is another key; nothing raw is stored in the key."""
import os
import subprocess
import sys
import textwrap

import psycopg

from collector_api.contract.sessions import SESSION_KEY_RE
from tests.helpers import make_key

from .helpers import poll_rows

SCRIPT = textwrap.dedent('''
    import asyncio, sys
    from otel_bridge import configure, workflow, record, flush

    configure()

    @workflow("flusso_ticket")
    async def handle(ticket_id, email, phone=None, conversation=None):
        extra = {"conversation_id": conversation} if conversation else {}
        record.ticket(ticket_id=ticket_id, subject="Where is my order?", requester_email=email,
                      requester_phone=phone, **extra)
        record.outcome(status="SUCCESS", resolution_status="resolved", overall_confidence=0.8)

    async def main():
        prefix = sys.argv[1]
        await handle(prefix + "-1", "ann@example.com")
        await handle(prefix + "-2", "Ann@Example.com ")   # the bridge normalizes before hashing
        await handle(prefix + "-3", "bob@example.com")
        await handle(prefix + "-4", None, phone="+39 347 555 0199")
        await handle(prefix + "-5", "ann@example.com", conversation="chat-77")
        await handle(prefix + "-6", "carl@example.com", conversation="chat-77")

    asyncio.run(main())
    print("delivered" if flush() else "not delivered")
''')


def _send(tmp_path, url: str, key: str, prefix: str) -> None:
    script = tmp_path / "tickets.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "LOG_COLLECTOR_URL": url, "LOG_COLLECTOR_API_KEY": key, "ENVIRONMENT": "test",
           "PII_HASH_KEY": "k" * 40}
    out = subprocess.run([sys.executable, str(script), prefix], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=90)
    assert out.returncode == 0 and out.stdout.strip() == "delivered", out.stderr


def _keys(dsn: str, client: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT ticket_id, session_key FROM workflow_logs WHERE client_id = %s",
                                 (client,)).fetchall())


def test_bridge_tickets_of_one_requester_form_one_session(live_server, db_dsn, tmp_path):
    _send(tmp_path, live_server.url, make_key(db_dsn, "acme"), "A")
    _send(tmp_path, live_server.url, make_key(db_dsn, "globex"), "G")  # same people, another tenant
    poll_rows(db_dsn, 12, timeout_s=20)
    acme, globex = _keys(db_dsn, "acme"), _keys(db_dsn, "globex")
    assert len(acme) == len(globex) == 6
    assert all(SESSION_KEY_RE.match(k) for k in [*acme.values(), *globex.values()])
    assert acme["A-1"] == acme["A-2"] and acme["A-1"].startswith("email-")
    assert acme["A-3"] != acme["A-1"]
    assert acme["A-4"].startswith("phone-")
    # An explicit conversation id wins over the requester: 5 and 6 share it, not Ann's session.
    assert acme["A-5"] == acme["A-6"] and acme["A-5"].startswith("conv-") and acme["A-5"] != acme["A-1"]
    # Tenant-specific: the same email (and conversation id) at globex never gives acme's key.
    assert not set(acme.values()) & set(globex.values())
    assert globex["G-1"] == globex["G-2"]
    with psycopg.connect(db_dsn) as conn:
        stored = " ".join(r[0] for r in conn.execute("SELECT session_key FROM workflow_logs").fetchall())
    for raw in ("ann", "example.com", "chat-77", "347"):
        assert raw not in stored
