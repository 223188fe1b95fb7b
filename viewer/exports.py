"""The filtered tickets as streamed downloads (CSV, JSON array): one code path for the search
page's export links and for the JSON API's export routes."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import Response, StreamingResponse

from collector_api.store.logs.reads import iter_ticket_rows

from .auth import Principal
from .context import ViewerContext
from .evaluations import export_evaluators, scored_rows
from .jsonout import dumps
from .pages import row_json
from .query_params import parse_ticket_query

EXPORT_COLUMNS = ("id", "client_id", "ticket_id", "status", "resolution_status", "executed_at", "environment",
                  "workflow_version", "overall_confidence", "hallucination_risk", "react_iterations",
                  "execution_time_seconds", "input_tokens", "output_tokens", "cost_usd", "complete", "trace_id")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Neutralize spreadsheet formulas: a text cell starting with = + - @ (or tab/CR) gets a `'` prefix."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _export_rows(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]):
    """(the rows, each with its `scores`; the tenant the export is narrowed to)."""
    query = parse_ticket_query(params, principal)
    rows = iter_ticket_rows(ctx.pool, principal.scope, query.filters, max_rows=ctx.settings.flusso_export_max_rows)
    return scored_rows(ctx, principal, rows), query.filters.client_id


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def export_csv(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]) -> Response:
    """The filtered rows as a streamed CSV download (a bad filter is refused before it starts), one
    `eval:<name>` column per evaluator (its latest score, empty when none)."""
    rows, client = _export_rows(ctx, principal, params)

    async def chunks():
        names = await export_evaluators(ctx, principal, client)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*EXPORT_COLUMNS, *(f"eval:{n}" for n in names)])
        n = 0
        async for row in rows:
            writer.writerow([csv_cell(row.get(c)) for c in EXPORT_COLUMNS]
                            + [csv_cell(row["scores"].get(name)) for name in names])
            n += 1
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="tickets-{_stamp()}.csv"'})


def export_json(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]) -> Response:
    """The filtered rows as a streamed JSON array download, each with its `scores`."""
    rows, _ = _export_rows(ctx, principal, params)

    async def chunks():
        yield b"["
        first = True
        async for row in rows:
            yield (b"" if first else b",\n") + dumps(row_json(row))
            first = False
        yield b"]\n"

    return StreamingResponse(chunks(), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="tickets-{_stamp()}.json"'})
