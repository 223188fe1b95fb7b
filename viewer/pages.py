"""The data of the pages, built once here and rendered by a view as HTML or by the JSON API as JSON:
the ticket list, one ticket (its sections and its span waterfall), two tickets compared, and the
overview's statistics.

Views import what they share from this module, never from one another. Everything read from a
log is untrusted model output: these builders only coerce shapes (a dict where a dict belongs,
finite numbers); the templates' autoescaping keeps it text.
"""
from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from collector_api.contract.numbers import finite_number, non_negative
from collector_api.contract.spantree import known_parent
from collector_api.store.logs.reads import count_tickets, find_tickets_by_trace, get_stats, get_ticket, list_tickets
from collector_api.store.logs.recontact import get_recontact
from collector_api.store.logs.usage import get_critical_nodes
from collector_api.store.reviews.calibration import get_calibration

from .auth import Principal
from .context import ViewerContext
from .errors import NotFound
from .evaluations import attach_scores, overview_evaluations
from .formatting import metric_value, nice_axis, ordered_metrics
from .jsonout import dumps
from .query_params import DEFAULT_RANGE_DAYS, TicketQuery, encode_cursor, parse_client, parse_range

MAX_SPANS = 2000
MAX_DEPTH = 12
MAX_COMPARED_NODES = 200


# --- shapes: a log is untrusted JSON ------------------------------------------------------

def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def row_json(row: dict) -> dict:
    """A stored row as JSON-ready values (timestamps as ISO 8601), without its log document."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "log_data"}


async def build_ticket_list(ctx: ViewerContext, principal: Principal, query: TicketQuery) -> dict[str, Any]:
    """The data of one page of search results; rendered as HTML by /tickets, as JSON by the API."""
    pool = ctx.pool
    # Two connections at once: the page and its capped count cost about the same on large ranges.
    page, count = await asyncio.gather(
        list_tickets(pool, principal.scope, query.filters, sort=query.sort, descending=query.descending,
                     limit=query.limit, after=query.after),
        count_tickets(pool, principal.scope, query.filters))
    next_cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    await attach_scores(ctx, principal, page.rows)  # each row's latest score per evaluator
    return {"tickets": page.rows, "count": count.value, "count_capped": count.capped, "count_text": str(count),
            "next_cursor": next_cursor, "filters": query.params or {}}


# --- one ticket -----------------------------------------------------------------------------

async def load_ticket(ctx: ViewerContext, principal: Principal, log_id: int) -> dict[str, Any]:
    """The row and its document (`log_data`), or NotFound, also for another tenant's ticket (no
    existence leak)."""
    row = await get_ticket(ctx.pool, principal.scope, log_id)
    if row is None:
        raise NotFound("no such ticket (or it belongs to another client)")
    return row


def _results(block: Any) -> dict:
    """Query and results ranked by score, highest first (results without a score last, in order)."""
    block = _dict(block)
    results = [r for r in _list(block.get("results")) if isinstance(r, dict)]
    results.sort(key=lambda r: -(finite_number(r.get("score")) if finite_number(r.get("score")) is not None
                                 else -math.inf))
    return {"query": block.get("query"), "results": results}


def ticket_sections(row: dict) -> dict[str, Any]:
    """What the ticket page shows of a row from load_ticket: header parts, waterfall with its
    critical path, ReACT iterations, retrieval, evidence, decisions, metrics, raw JSON."""
    log = _dict(row["log_data"])
    trace = _dict(log.get("trace"))
    evidence = _dict(trace.get("evidence"))
    output = _dict(trace.get("output"))
    retrieval = _dict(trace.get("retrieval"))
    decisions = [d for d in _list(_dict(trace.get("planning")).get("decisions")) + _list(output.get("decisions"))
                 if isinstance(d, dict)]
    metrics = _dict(log.get("metrics"))
    spans = _list(trace.get("spans"))
    axis_end, ticks = waterfall_axis(spans)
    return {
        "log": log,
        "identification": _dict(log.get("identification")),
        "outcome": _dict(log.get("outcome")),
        "ticket": _dict(trace.get("ticket")),
        "waterfall": mark_critical(build_waterfall(spans, axis_end), critical_spans(row)),
        "waterfall_ticks": ticks,
        "critical_known": critical_spans(row) is not None,
        "iterations": [i for i in _list(_dict(trace.get("react")).get("iterations")) if isinstance(i, dict)],
        "react_count": metrics.get("react_iterations") if isinstance(metrics.get("react_iterations"), int) else None,
        "vision": _results(retrieval.get("vision")),
        "text": _results(retrieval.get("text")),
        "evidence_items": [i for i in _list(evidence.get("items")) if isinstance(i, dict)],
        "conflicts": _list(evidence.get("conflicts")),
        "resolution": evidence.get("resolution"),
        "decisions": decisions,
        "draft": output.get("draft"),
        "question": scrubbed_question(_dict(trace.get("ticket"))),
        "metrics": ordered_metrics({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}),
        "node_durations": _dict(metrics.get("node_durations_ms")),
        "raw_json": dumps(log, indent=True, sort_keys=True).decode(),
    }


# The ticket's texts a reviewer reads the draft against, in this order (content mode "scrub").
QUESTION_FIELDS = ("question", "subject", "description", "body", "message", "customer_message")
_WHOLE_TOKEN = re.compile(r"^\[[a-z_]{2,24}:[0-9a-f]{6,64}\]$")


def scrubbed_question(ticket: dict) -> str | None:
    """The customer's question as the client shipped it in content mode "scrub" (readable, every
    personal value a token); None when the ticket's texts are whole tokens (mode "hash")."""
    for key in QUESTION_FIELDS:
        value = ticket.get(key)
        if isinstance(value, str) and value.strip() and not _WHOLE_TOKEN.match(value.strip()):
            return value
    return None


# --- the span waterfall ---------------------------------------------------------------------

def trace_end(spans: list) -> float:
    """Where the last span ends, in ms from the trace's start (0 without spans)."""
    return max((non_negative(s.get("start_offset_ms")) + non_negative(s.get("duration_ms"))
                for s in spans if isinstance(s, dict)), default=0.0)


def row_spans(row: dict) -> list:
    """The spans of a stored row's log (at most MAX_SPANS, as the waterfall draws)."""
    return _list(_dict(_dict(row["log_data"]).get("trace")).get("spans"))[:MAX_SPANS]


def waterfall_axis(spans: list) -> tuple[float, list[str]]:
    """(axis end in ms, tick labels): even round steps from 0 to just past the trace's end."""
    return nice_axis(trace_end([s for s in spans[:MAX_SPANS] if isinstance(s, dict)]))


def build_waterfall(spans: list, axis_end: float | None = None) -> list[dict]:
    """Spans ordered depth-first by start offset, each with its depth and bar position (0-1000) on the axis.

    The axis runs from 0 to `axis_end` ms (default: the end of the trace).
    """
    spans = [s for s in spans[:MAX_SPANS] if isinstance(s, dict)]
    total = axis_end if axis_end and axis_end > 0 else (trace_end(spans) or 1.0)
    ids = {s.get("span_id") for s in spans if s.get("span_id")}
    children: dict[Any, list] = {}
    for s in spans:
        children.setdefault(known_parent(s.get("span_id"), s.get("parent_span_id"), ids), []).append(s)
    rows: list[dict] = []
    seen: set[int] = set()

    def kids_of(parent: Any) -> list:
        return sorted(children.get(parent, []), key=lambda s: finite_number(s.get("start_offset_ms")) or 0)

    # Depth-first with an explicit stack: a chain of thousands of nested spans must not hit
    # Python's recursion limit (anyone with an ingest key can store such a log).
    stack = [(s, 0) for s in reversed(kids_of(None))]
    while stack:
        s, depth = stack.pop()
        if id(s) in seen:
            continue
        seen.add(id(s))
        start = non_negative(s.get("start_offset_ms"))
        duration = non_negative(s.get("duration_ms"))
        error = s.get("error")
        status = str(s.get("status") or "")
        rows.append({
            "name": str(s.get("name") or "?"), "kind": str(s.get("kind") or ""), "depth": min(depth, MAX_DEPTH),
            "start_ms": start, "duration_ms": duration, "status": status,
            "error": error if error not in (None, "") else None,
            "failed": bool(error) or status.upper() == "ERROR",
            "x": round(min(start / total, 1) * 1000, 2), "w": round(max(min(duration / total, 1) * 1000, 2), 2),
            "attributes": _dict(s.get("attributes")), "span_id": s.get("span_id"), "links": span_links(s),
        })
        if s.get("span_id") is not None:
            stack.extend((kid, depth + 1) for kid in reversed(kids_of(s.get("span_id"))))

    for s in spans:  # spans caught in a parent cycle still appear, at the top level
        if id(s) not in seen:
            seen.add(id(s))
            rows.append({"name": str(s.get("name") or "?"), "kind": str(s.get("kind") or ""), "depth": 0,
                         "start_ms": finite_number(s.get("start_offset_ms")) or 0,
                         "duration_ms": finite_number(s.get("duration_ms")) or 0,
                         "status": str(s.get("status") or ""), "error": s.get("error"), "failed": bool(s.get("error")),
                         "x": 0, "w": 2, "attributes": _dict(s.get("attributes")), "span_id": s.get("span_id"),
                         "links": span_links(s)})
    return rows


def span_links(span: dict) -> list[dict]:
    """The span's links (OTLP `links`) that name a trace and a span; `log_id` None until resolved."""
    return [{"trace_id": link["trace_id"], "span_id": link["span_id"], "attributes": _dict(link.get("attributes")),
             "log_id": None}
            for link in _list(span.get("links")) if isinstance(link, dict)
            and isinstance(link.get("trace_id"), str) and isinstance(link.get("span_id"), str)]


async def resolve_links(ctx: ViewerContext, principal: Principal, row: dict, waterfall: list[dict]) -> None:
    """Each link whose trace is a stored ticket of the same tenant gets that ticket's `log_id`."""
    links = [link for r in waterfall for link in r.get("links", ())]
    if not links:
        return
    found = await find_tickets_by_trace(ctx.pool, principal.scope, row["client_id"], [k["trace_id"] for k in links])
    for link in links:
        link["log_id"] = found.get(link["trace_id"])


def critical_spans(row: dict) -> set[str] | None:
    """The span ids of the log's critical path (computed when it was stored), or None when the
    log predates it and the derived-backfill job has not reached it yet."""
    stored = row.get("critical_path")
    if not isinstance(stored, dict):
        return None
    return {s for s in _list(stored.get("spans")) if isinstance(s, str)}


def critical_path_nodes(row: dict) -> set[str]:
    """The node names on the log's critical path (empty when unknown)."""
    return {n for n in _list(_dict(row.get("critical_path")).get("nodes")) if isinstance(n, str)}


def mark_critical(rows: list[dict], critical: set[str] | None) -> list[dict]:
    """Flag the waterfall rows on the critical path (`critical`: True/False; None when unknown)."""
    for r in rows:
        r["critical"] = None if critical is None else r.get("span_id") in critical
    return rows


# --- two tickets compared -------------------------------------------------------------------

def _diff(a: Any, b: Any) -> float | None:
    x, y = finite_number(a), finite_number(b)
    return None if x is None or y is None else y - x


def metric_rows(a: Mapping, b: Mapping) -> list[dict[str, Any]]:
    """Scalar metrics of both logs in the ticket page's order: key, both values (formatted), b - a."""
    scalar = {k: None for m in (a, b) for k, v in m.items() if not isinstance(v, (dict, list))}
    rows = []
    for title, items in ordered_metrics(scalar):
        for key, _ in items:
            rows.append({"group": title, "key": key,
                         "a": metric_value(key, a.get(key)) if key in a else "–",
                         "b": metric_value(key, b.get(key)) if key in b else "–",
                         "diff": _diff(a.get(key), b.get(key))})
    return rows


def node_rows(a: Mapping, b: Mapping, crit_a: set[str], crit_b: set[str]) -> list[dict[str, Any]]:
    """Per node: both durations (ms), b - a, and whether it was on each critical path."""
    names = list(dict.fromkeys([*a, *b]))
    return [{"node": str(n), "a": finite_number(a.get(n)), "b": finite_number(b.get(n)),
             "diff": _diff(a.get(n), b.get(n)), "crit_a": n in crit_a, "crit_b": n in crit_b}
            for n in names[:MAX_COMPARED_NODES]]


def _compared_side(row: dict, axis_end: float) -> dict[str, Any]:
    """One ticket of a comparison: its row, metrics, and waterfall on the shared axis."""
    critical = critical_spans(row)
    return {"row": row, "metrics": _dict(_dict(row["log_data"]).get("metrics")),
            "waterfall": mark_critical(build_waterfall(row_spans(row), axis_end), critical),
            "critical_known": critical is not None, "critical_nodes": critical_path_nodes(row)}


async def build_comparison(ctx: ViewerContext, principal: Principal, first: int, second: int) -> dict[str, Any]:
    """Tickets `first` (A) and `second` (B) side by side: metric and node-duration differences
    (B - A) and both waterfalls on one time scale. NotFound (404) for another tenant's ticket."""
    row_a = await load_ticket(ctx, principal, first)
    row_b = await load_ticket(ctx, principal, second)
    axis_end, ticks = nice_axis(max(trace_end(row_spans(r)) for r in (row_a, row_b)))
    a, b = _compared_side(row_a, axis_end), _compared_side(row_b, axis_end)
    return {"a": a, "b": b, "ticks": ticks,
            "metric_rows": metric_rows(a["metrics"], b["metrics"]),
            "node_rows": node_rows(_dict(a["metrics"].get("node_durations_ms")),
                                   _dict(b["metrics"].get("node_durations_ms")),
                                   a["critical_nodes"], b["critical_nodes"])}


# --- the overview ---------------------------------------------------------------------------

def rollups_enabled(ctx: ViewerContext) -> bool:
    """Whether a report may read rollups: the server's rollup-refresh job keeps them current
    (flusso_obs/server.py); with FLUSSO_ROLLUP_REFRESH_SECONDS=0 there is no job and every
    request aggregates raw logs. Days not rolled up yet are aggregated live by get_stats."""
    return ctx.settings.flusso_rollup_refresh_seconds > 0


def stats_json(stats) -> dict[str, Any]:
    """The stats as JSON-ready data: what /api/v1/stats answers and what the charts plot."""
    return {
        "start": stats.start.isoformat(), "end": stats.end.isoformat(),
        "totals": stats.totals, "per_day": stats.per_day, "duration_histogram": stats.duration_histogram,
        "node_durations": stats.node_durations,
        "per_client": [{**c, "last_ticket_at": c["last_ticket_at"].isoformat() if c.get("last_ticket_at") else None}
                       for c in stats.per_client],
    }


async def build_overview(ctx: ViewerContext, principal: Principal, params: Mapping[str, str], *,
                         critical_nodes: bool = False) -> dict[str, Any]:
    """Parse the range (and client, for providers) from `params` and compute the stats once; with
    `critical_nodes` also the nodes most often on the critical path. The queries run side by side
    (each in its own pooled connection): the page waits for the slowest, not for their sum."""
    start, end = parse_range(params, default_days=DEFAULT_RANGE_DAYS)
    client = parse_client(params, principal)
    use_rollups = rollups_enabled(ctx)
    reads = [get_stats(ctx.pool, principal.scope, start, end, client_id=client, use_rollups=use_rollups),
             get_calibration(ctx.pool, principal.scope, start, end, client),
             get_recontact(ctx.pool, principal.scope, start, end, client, use_rollups=use_rollups,
                           window_days=ctx.settings.flusso_recontact_days),
             overview_evaluations(ctx, principal, start, end, client)]
    if critical_nodes:
        reads.append(get_critical_nodes(ctx.pool, principal.scope, start, end, client_id=client,
                                        use_rollups=use_rollups))
    stats, calibration, recontact, evaluations, *critical = await asyncio.gather(*reads)
    data = stats_json(stats)
    data["calibration"] = calibration  # confidence against the reviewers' verdicts
    data["recontact"] = recontact.as_dict()  # tickets resolved in the range whose customer came back
    data["evaluations"] = evaluations  # scores over time; each evaluator against the verdicts
    return {"stats": data, "client": client, "critical_nodes": critical[0] if critical else []}
