"""One ticket: header, span waterfall, ReACT iterations, retrieval, evidence, decisions, raw JSON.

Everything inside a log is untrusted model output: it only ever reaches the page through
Jinja's autoescaping, never as markup, URL or script.
"""
from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.store.logs.reads import find_tickets_by_trace, get_ticket
from collector_api.store.reviews.reads import list_reviews
from collector_api.store.reviews.writes import VERDICTS

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..errors import NotFound
from ..formatting import nice_axis, ordered_metrics
from ..jsonout import dumps
from ..render import render
from ..routing import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
MAX_SPANS = 2000
MAX_DEPTH = 12


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def parse_log_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # "²".isdigit() is True
        raise NotFound("no such ticket")
    return int(text)


def _trace_end(spans: list) -> float:
    return max((max(0.0, _float(s.get("start_offset_ms")) or 0) + max(0.0, _float(s.get("duration_ms")) or 0)
                for s in spans if isinstance(s, dict)), default=0.0)


def waterfall_axis(spans: list) -> tuple[float, list[str]]:
    """(axis end in ms, tick labels): even round steps from 0 to just past the trace's end."""
    return nice_axis(_trace_end([s for s in spans[:MAX_SPANS] if isinstance(s, dict)]))


def build_waterfall(spans: list, axis_end: float | None = None) -> list[dict]:
    """Spans ordered depth-first by start offset, each with its depth and bar position (0-1000) on the axis.

    The axis runs from 0 to `axis_end` ms (default: the end of the trace).
    """
    spans = [s for s in spans[:MAX_SPANS] if isinstance(s, dict)]
    total = axis_end if axis_end and axis_end > 0 else (_trace_end(spans) or 1.0)
    ids = {s.get("span_id") for s in spans if s.get("span_id")}
    children: dict[Any, list] = {}
    for s in spans:
        parent = s.get("parent_span_id")
        children.setdefault(parent if parent in ids and parent != s.get("span_id") else None, []).append(s)
    rows: list[dict] = []
    seen: set[int] = set()

    def kids_of(parent: Any) -> list:
        return sorted(children.get(parent, []), key=lambda s: _float(s.get("start_offset_ms")) or 0)

    # Depth-first with an explicit stack: a chain of thousands of nested spans must not hit
    # Python's recursion limit (anyone with an ingest key can store such a log).
    stack = [(s, 0) for s in reversed(kids_of(None))]
    while stack:
        s, depth = stack.pop()
        if id(s) in seen:
            continue
        seen.add(id(s))
        start = max(0.0, _float(s.get("start_offset_ms")) or 0)
        duration = max(0.0, _float(s.get("duration_ms")) or 0)
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
                         "start_ms": _float(s.get("start_offset_ms")) or 0,
                         "duration_ms": _float(s.get("duration_ms")) or 0,
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


def mark_critical(rows: list[dict], critical: set[str] | None) -> list[dict]:
    """Flag the waterfall rows on the critical path (`critical`: True/False; None when unknown)."""
    for r in rows:
        r["critical"] = None if critical is None else r.get("span_id") in critical
    return rows


def _results(block: Any) -> dict:
    """Query and results ranked by score, highest first (results without a score last, in order)."""
    block = _dict(block)
    results = [r for r in _list(block.get("results")) if isinstance(r, dict)]
    results.sort(key=lambda r: -(_float(r.get("score")) if _float(r.get("score")) is not None else -math.inf))
    return {"query": block.get("query"), "results": results}


async def build_ticket_detail(ctx: ViewerContext, principal: Principal, log_id: int) -> dict[str, Any]:
    """The row and its document, or NotFound (also for another tenant's ticket: no existence leak)."""
    row = await get_ticket(ctx.pool, principal.scope, log_id)
    if row is None:
        raise NotFound("no such ticket (or it belongs to another client)")
    return row


def detail_sections(row: dict) -> dict[str, Any]:
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
        "metrics": ordered_metrics({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}),
        "node_durations": _dict(metrics.get("node_durations_ms")),
        "raw_json": dumps(log, indent=True, sort_keys=True).decode(),
    }


@router.get("/tickets/{log_id}")
async def get_ticket_page(request: Request, log_id: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    row = await build_ticket_detail(ctx, principal, parse_log_id(log_id))
    review = await review_section(ctx, principal, row["id"], request.query_params.get("queue", ""))
    sections = detail_sections(row)
    await resolve_links(ctx, principal, row, sections["waterfall"])
    return render(request, "ticket.html", {"principal": principal, "row": row, **sections, **review})


async def review_section(ctx: ViewerContext, principal: Principal, log_id: int, queue: str) -> dict[str, Any]:
    """The review form's choices and the ticket's review history, newest first (issue 17)."""
    history = await list_reviews(ctx.pool, principal.scope, log_id)
    return {"reviews": history, "verdict": history[0]["verdict"] if history else None,
            "verdicts": VERDICTS, "review_flags": ctx.review_flags, "queue": queue[:2000]}


@router.get("/tickets/{log_id}/raw")
async def get_ticket_raw(log_id: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    row = await build_ticket_detail(ctx, principal, parse_log_id(log_id))
    body = dumps(row["log_data"], indent=True)
    name = f"ticket-{row['id']}.json"
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
