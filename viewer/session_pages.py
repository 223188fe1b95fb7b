"""The data of the sessions pages, built once here and rendered by viewer.views.sessions as HTML
or as JSON (the same builder for both, as viewer.pages): the session list, one session's
timeline, and the ticket page's "this customer's other tickets" count.

A session key is a one-way token (collector_api.contract.sessions): the pages show tokens, never
people. Another tenant's key answers 404, exactly like an unknown one.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector_api.store.logs.sessions import count_session_tickets, get_session, list_sessions

from .auth import Principal
from .context import ViewerContext
from .errors import NotFound
from .pages import row_json
from .query_params import SessionQuery, decode_cursor, encode_cursor, parse_client, parse_session_key


async def build_session_list(ctx: ViewerContext, principal: Principal, query: SessionQuery) -> dict[str, Any]:
    """One page of sessions (latest contact first) for /sessions and GET /api/v1/sessions."""
    page = await list_sessions(ctx.pool, principal.scope, query.filters, limit=query.limit, after=query.after)
    f = query.filters
    return {"sessions": [row_json(r) for r in page.rows],
            "next_cursor": encode_cursor(page.next_cursor) if page.next_cursor else None,
            "start": f.start.isoformat(), "end": f.end.isoformat(), "filters": query.params or {}}


def _timeline(tickets: list[dict], window_days: int) -> list[dict]:
    """The tickets as JSON-ready rows, each with the days since the session's previous ticket and
    whether it is a recontact (the previous one was resolved, at most `window_days` before; on
    the first row of a later page the previous ticket is on the page before, so None)."""
    out, previous = [], None
    for t in tickets:
        row = row_json(t)
        gap = (t["executed_at"] - previous["executed_at"]).total_seconds() / 86400 if previous else None
        row["days_since_previous"] = round(gap, 2) if gap is not None else None
        row["recontact"] = (previous["resolution_status"] == "resolved" and gap <= window_days) if previous else None
        previous = t
        out.append(row)
    return out


async def build_session(ctx: ViewerContext, principal: Principal, key_text: str,
                        params: Mapping[str, str]) -> dict[str, Any]:
    """One session: its summary and a page of its tickets, oldest first. NotFound (404) for an
    unknown key and for another tenant's."""
    key = parse_session_key(key_text)
    after_text = params.get("after")
    after = decode_cursor(after_text[:400], "time") if after_text else None
    session = await get_session(ctx.pool, principal.scope, key, parse_client(params, principal), after=after)
    if session is None:
        raise NotFound("no such session (or it belongs to another client)")
    return {"session_key": session.session_key, "client_id": session.client_id,
            "summary": row_json(session.summary),
            "tickets": _timeline(session.tickets, ctx.settings.flusso_recontact_days),
            "next_cursor": encode_cursor(session.next_cursor) if session.next_cursor else None,
            "recontact_days": ctx.settings.flusso_recontact_days}


async def other_tickets(ctx: ViewerContext, principal: Principal, row: dict) -> int | None:
    """How many other tickets the ticket's session holds (None without a session key)."""
    if not row.get("session_key"):
        return None
    return max(0, await count_session_tickets(ctx.pool, principal.scope, row["client_id"], row["session_key"]) - 1)
