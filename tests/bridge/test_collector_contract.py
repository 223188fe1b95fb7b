"""What the bridge emits is what the collector accepts: real tickets (the demo workflow, some
failing) run through the bridge, and every log passes the collector's own schema validator
and its executed_at rule (collector_api/contract/schema.py, collector_api/contract/timestamps.py)."""

import asyncio
from datetime import UTC, datetime

from collector_api.contract.schema import schema_error
from collector_api.contract.timestamps import parse_executed_at
from examples.support_workflow import generate_tickets, handle_ticket
from tests.helpers import run_async

TICKETS = 12


async def run_all(tickets):
    return await asyncio.gather(*(handle_ticket(t) for t in tickets), return_exceptions=True)


def test_every_log_the_bridge_emits_passes_the_collectors_checks(memory_bridge):
    tickets = generate_tickets(TICKETS, seed=3)
    tickets[0]["simulate"] = {"fail": True}
    started = datetime.now(UTC)
    results = run_async(run_all(tickets))
    assert isinstance(results[0], RuntimeError)
    logs = memory_bridge(TICKETS)
    assert sorted(log["ticket_info"]["ticket_id"] for log in logs) == sorted(t["ticket_id"] for t in tickets)
    for log in logs:
        assert schema_error(log) is None
        executed_at = parse_executed_at(log["ticket_info"]["executed_at"])
        assert abs((executed_at - started).total_seconds()) < 60
    assert sum(log["outcome"]["status"] == "FAILED" for log in logs) == 1
