"""`flusso-obs demo`: simulated Flusso tickets through the real bridge, OTLP/HTTP, to a collector."""
from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DemoSummary:
    tickets: int
    statuses: Counter
    seconds: float
    delivered: bool
    collector: str
    problems: dict = field(default_factory=dict)  # what was not delivered whole, from otel_bridge.stats()

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        if self.delivered:
            state = "delivered"
        else:
            detail = ", ".join(f"{k} {v}" for k, v in sorted(self.problems.items()))
            state = f"NOT all delivered ({detail or 'see warnings above'})"
        return (f"sent {self.tickets} tickets in {self.seconds:.1f}s ({parts}) to {self.collector}: {state}")


_PROBLEMS = ("logs_pending", "logs_spooled", "logs_incomplete", "logs_rejected")


def _problems(stats: dict) -> dict:
    """Counters that say something was not delivered whole (drops, rejections, incomplete logs,
    logs still pending or spooled)."""
    return {k: v for k, v in stats.items() if v and k != "dropped_spans_total"
            and (k.startswith(("dropped_", "rejected_")) or k in _PROBLEMS)}


def run_demo(*, collector: str, api_key: str, tickets: int, rate: float = 0.0, seed: int | None = None,
             progress: bool = True, speed: float = 50.0, concurrency: int = 16) -> DemoSummary:
    """Run `tickets` simulated tickets, up to `concurrency` at once (started at `rate` per second
    when > 0). `speed` scales the simulated latencies: 50 gives tickets of about 1-5 s."""
    from tqdm import tqdm

    import otel_bridge
    from flusso_obs.examples import support_workflow

    # Demo data is synthetic: without PII_HASH_KEY a random key per run still hashes every value.
    pii_key = os.environ.get("PII_HASH_KEY") or secrets.token_hex(32)
    otel_bridge.configure(endpoint=collector, api_key=api_key, environment="demo", workflow_version="2.3.0",
                          pii_hash_key=pii_key)
    batch = support_workflow.generate_tickets(tickets, seed=random.randrange(2**31) if seed is None else seed)
    statuses: Counter = Counter()
    started = time.monotonic()

    support_workflow.SPEED = speed

    async def drive() -> None:
        slots = asyncio.Semaphore(max(1, concurrency))
        with tqdm(total=len(batch), unit="ticket", disable=not progress, desc="demo") as bar:
            async def one(i: int, ticket: dict) -> None:
                if rate > 0:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                async with slots:
                    try:
                        result = await support_workflow.handle_ticket(ticket)
                        statuses[(result or {}).get("status", "SUCCESS")] += 1
                    except Exception:  # the demo's failures are deliberate: the log says FAILED
                        statuses["FAILED"] += 1
                bar.update(1)

            await asyncio.gather(*(one(i, t) for i, t in enumerate(batch)))

    asyncio.run(drive())
    delivered = otel_bridge.flush(timeout_seconds=15.0)
    problems = _problems(otel_bridge.stats())
    delivered = otel_bridge.shutdown(timeout_seconds=5.0) and delivered and not problems
    return DemoSummary(len(batch), statuses, time.monotonic() - started, delivered, collector, problems)
