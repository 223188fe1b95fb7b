"""`flusso-obs demo --backfill-days N`: the demo's history, so a first run shows something.

Tickets of the last N UTC days (a few to a dozen a day, a pool of customers of whom some write
again and again) run through the REAL bridge (decorators, builder, redaction) into an in-memory
exporter; each log then gets its planned time (`ticket_info.executed_at`, inside the
collector's accepted window) and a trace id derived from its ticket id, and is sent over
OTLP/HTTP JSON to `/v1/logs` like any other log. Everything is derived from the calendar day,
so running it again sends the same logs, which the collector stores once (its idempotency key
is the tenant, the trace id and the time): a re-run adds only the hours and days not sent yet.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# Synthetic data: without PII_HASH_KEY one fixed demo key, so repeat customers keep their token
# (and their session) from one run to the next.
DEMO_HASH_KEY = "flusso-demo-synthetic-data-" + "0" * 16
CUSTOMERS = 60
REGULARS = 12  # a fifth of the customers write 40 % of the tickets: they come back
SEND_BATCH = 100


@dataclass(frozen=True)
class Planned:
    ticket: dict
    at: datetime
    trace_id: str


@dataclass
class BackfillSummary:
    days: int
    planned: int
    sent: int

    def __str__(self) -> str:
        return f"backfilled {self.sent} of {self.planned} tickets over {self.days} day(s)"


def _customers() -> list[dict]:
    from flusso_obs.examples import support_workflow

    people = support_workflow.generate_tickets(CUSTOMERS, seed=20261207)
    return [{k: p[k] for k in ("requester_name", "requester_email", "requester_phone")} for p in people]


def plan_day(day: date, customers: list[dict], now: datetime) -> list[Planned]:
    """The tickets of `day` (the same on every run), those before `now` only."""
    from flusso_obs.examples import support_workflow

    rng = random.Random(day.toordinal())
    count = rng.randint(4, 12)
    tickets = support_workflow.generate_tickets(count, seed=day.toordinal() % 10_000)
    out = []
    for i, ticket in enumerate(tickets):
        person = customers[rng.randrange(REGULARS)] if rng.random() < 0.4 else rng.choice(customers)
        at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(seconds=rng.uniform(7, 21) * 3600)
        ticket.update(person, ticket_id=f"D-{day:%Y%m%d}-{i:02d}")
        if at < now - timedelta(minutes=1):
            out.append(Planned(ticket, at, hashlib.sha256(f"flusso-demo:{ticket['ticket_id']}".encode())
                               .hexdigest()[:32]))
    return out


def plan_backfill(days: int, now: datetime | None = None) -> list[Planned]:
    now = now or datetime.now(UTC)
    customers = _customers()
    first = now.date() - timedelta(days=days - 1)
    return [p for i in range(days) for p in plan_day(first + timedelta(days=i), customers, now)]


def _captured_logs(planned: list[Planned], pii_key: str) -> dict[str, dict]:
    """Run every planned ticket through the bridge; ticket id -> its redacted log."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    import otel_bridge
    from flusso_obs.examples import support_workflow

    memory = InMemoryLogRecordExporter()
    otel_bridge.configure(endpoint=None, exporter=memory, environment="demo", workflow_version="2.3.0",
                          pii_hash_key=pii_key)
    support_workflow.SPEED = 0.0

    async def drive() -> None:
        async def one(p: Planned) -> None:
            try:
                await support_workflow.handle_ticket(p.ticket)
            except Exception:  # the demo's failures are deliberate: the log says FAILED
                pass
        await asyncio.gather(*(one(p) for p in planned))

    asyncio.run(drive())
    otel_bridge.flush(timeout_seconds=15.0)
    logs = {}
    for item in memory.get_finished_logs():
        log = json.loads(getattr(item, "log_record", item).body)
        logs[log["ticket_info"]["ticket_id"]] = log
    otel_bridge.shutdown(timeout_seconds=5.0)
    return logs


def _record(log: dict) -> dict:
    at = datetime.fromisoformat(log["ticket_info"]["executed_at"].replace("Z", "+00:00"))
    return {"timeUnixNano": str(int(at.timestamp() * 1e9)), "eventName": "flusso.workflow_log",
            "traceId": log["trace_id"], "body": {"stringValue": json.dumps(log)},
            "attributes": [{"key": "flusso.ticket_id", "value": {"stringValue": log["ticket_info"]["ticket_id"]}}]}


def _send(collector: str, api_key: str, logs: list[dict]) -> int:
    url = collector.rstrip("/") + "/v1/logs"
    sent = 0
    for i in range(0, len(logs), SEND_BATCH):
        batch = logs[i:i + SEND_BATCH]
        body = json.dumps({"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [
            {"scope": {"name": "flusso-demo-backfill"}, "logRecords": [_record(log) for log in batch]}]}]})
        request = urllib.request.Request(url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json", "x-api-key": api_key})
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 (the operator's collector URL)
            answer = json.loads(reply.read() or b"{}")
        sent += len(batch) - int((answer.get("partialSuccess") or {}).get("rejectedLogRecords") or 0)
    return sent


def run_backfill(*, collector: str, api_key: str, days: int, pii_key: str | None = None,
                 now: datetime | None = None) -> BackfillSummary:
    """Send the demo history of the last `days` days (today included) to `collector`."""
    planned = plan_backfill(days, now)
    logs = _captured_logs(planned, pii_key or DEMO_HASH_KEY)
    shipped = []
    for p in planned:
        log = logs.get(p.ticket["ticket_id"])
        if log is not None:
            log["ticket_info"]["executed_at"] = p.at.isoformat().replace("+00:00", "Z")
            log["trace_id"] = p.trace_id
            shipped.append(log)
    return BackfillSummary(days, len(planned), _send(collector, api_key, shipped))
