"""Datasets: what a creation request means (one parser for the JSON API, the search page's form
and the CLI) and the data of the dataset pages, for HTML and JSON alike.

A dataset is made from a ticket search (the query string of /tickets, parsed by the viewer's own
`parse_ticket_query`: one filter language), from the review queue with the same filters, or
from log ids. Its items are copies (collector_api.store.datasets.writes).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from collector_api.store.datasets.reads import get_dataset, list_datasets, list_experiments, list_items
from collector_api.store.datasets.writes import MAX_IDS, MAX_ITEMS, DatasetError, Selection, create_dataset

from .auth import Principal
from .context import ViewerContext
from .errors import BadRequest, NotFound, ViewerError
from .query_params import parse_ticket_query

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_QUERY = 2_000
SOURCES = ("search", "queue", "log_ids")


def parse_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise BadRequest("name: 1-64 characters, letters, digits, '_', '.', '-' (starting with a letter or digit)")
    return value


def dataset_client(value: Any, principal: Principal) -> str:
    """The tenant a dataset belongs to: a client's own; a provider must name one (`client`)."""
    if not principal.is_provider:
        return principal.client_id or ""
    if not isinstance(value, str) or not _CLIENT.match(value):
        raise BadRequest("client: a provider names the tenant of the dataset (client=ID)")
    return value


def _limit(value: Any) -> int:
    if value in (None, ""):
        return MAX_ITEMS
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"limit: expected a whole number of items, 1-{MAX_ITEMS}") from None
    if isinstance(value, bool) or not 1 <= limit <= MAX_ITEMS:
        raise BadRequest(f"limit: expected a whole number of items, 1-{MAX_ITEMS}")
    return limit


def _log_ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise BadRequest("log_ids: expected a non-empty list of ticket ids (the numbers of /tickets/ID)")
    if len(value) > MAX_IDS:
        raise BadRequest(f"log_ids: at most {MAX_IDS} ids per request, got {len(value)}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 2**63 for v in value):
        raise BadRequest("log_ids: every id must be a positive whole number")
    return tuple(dict.fromkeys(value))


def parse_selection(values: Mapping[str, Any], principal: Principal) -> Selection:
    """Exactly one source: `search` or `queue` (a /tickets query string) or `log_ids` (a list)."""
    given = [s for s in SOURCES if values.get(s) not in (None, "")]
    if len(given) != 1:
        raise BadRequest("source: give exactly one of search (a /tickets query string), queue (the review"
                         " queue's filters) or log_ids (a list of ticket ids)")
    source, limit = given[0], _limit(values.get("limit"))
    if source == "log_ids":
        ids = _log_ids(values["log_ids"])
        return Selection("ids", log_ids=ids, limit=limit, query=f"{len(ids)} ids")
    text = values[source]
    if not isinstance(text, str) or len(text) > MAX_QUERY:
        raise BadRequest(f"{source}: expected a query string of at most {MAX_QUERY} characters")
    if "\x00" in text or "%00" in text:
        raise BadRequest(f"{source}: NUL characters are not allowed")
    try:
        params = dict(parse_qsl(text.lstrip("?"), max_num_fields=64))
    except ValueError:
        raise BadRequest(f"{source}: too many parameters") from None
    query = parse_ticket_query(params, principal)  # the search's own parser: one filter language
    filters = replace(query.filters, client_id=None)  # the dataset's tenant scopes the copy
    return Selection(source, filters=filters, limit=limit, query=query.link())


async def create_from_request(ctx: ViewerContext, principal: Principal, values: Mapping[str, Any],
                              created_by: str) -> dict:
    """Validate a creation request (name, client, one source, limit) and create the dataset."""
    name = parse_name(values.get("name"))
    client = dataset_client(values.get("client"), principal)
    selection = parse_selection(values, principal)
    try:
        return await create_dataset(ctx.pool, client, name, selection, created_by)
    except DatasetError as exc:
        raise ViewerError(str(exc), status=exc.status) from None


def author_of(principal: Principal) -> str:
    """Who created a dataset: a user's email, or an API key's id."""
    if principal.via == "api_key":
        return f"key {principal.key_id}"
    return principal.email or f"user-{principal.user_id}"


def dataset_json(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "client_id": row["client_id"], "name": row["name"], "source": row["source"],
            "source_query": row["source_query"], "item_count": row["item_count"], "created_by": row["created_by"],
            "created_at": row["created_at"].isoformat(), **({"experiments": row["experiments"]}
                                                             if "experiments" in row else {})}


def item_json(row: dict) -> dict[str, Any]:
    """An item as the API and the export show it: the copy, and where it came from."""
    return {"id": row["id"], "dataset_id": row["dataset_id"], "input": row["input"],
            "expected_output": row["expected_output"], "expected_source": row["expected_source"],
            "verdict": row["verdict"], "flags": list(row["flags"]),
            "source": {"log_id": row["log_id"], "ticket_id": row["ticket_id"],
                       "executed_at": row["executed_at"].isoformat(), "status": row["status"]}}


async def load_dataset(ctx: ViewerContext, principal: Principal, name: str, client: Any) -> dict:
    """The dataset `name` (of `client` for a provider), or NotFound, also for another tenant's."""
    if not NAME.match(name):
        raise NotFound("no such dataset")
    tenant = dataset_client(client, principal)
    row = await get_dataset(ctx.pool, principal.scope, tenant, name)
    if row is None:
        raise NotFound("no such dataset (or it belongs to another client)")
    return row


async def build_dataset_list(ctx: ViewerContext, principal: Principal, client: str | None) -> dict[str, Any]:
    rows = await list_datasets(ctx.pool, principal.scope, client)
    return {"datasets": [dataset_json(r) for r in rows]}


def parse_after(value: Any) -> int:
    if value in (None, ""):
        return 0
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadRequest("after: expected the previous page's next_after (a number)")
    return int(value)


def parse_page_limit(value: Any, default: int = 100, most: int = 1000) -> int:
    if value in (None, ""):
        return default
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or not 1 <= int(value) <= most:
        raise BadRequest(f"limit: expected 1-{most}")
    return int(value)


async def build_dataset_page(ctx: ViewerContext, principal: Principal, name: str, client: Any, *,
                             after: int = 0, limit: int = 100) -> dict[str, Any]:
    """A dataset, one keyset page of its items (`next_after` for the next), and its experiments."""
    row = await load_dataset(ctx, principal, name, client)
    items = await list_items(ctx.pool, principal.scope, row, after=after, limit=limit + 1)
    experiments = await list_experiments(ctx.pool, principal.scope, row["client_id"], dataset_id=row["id"])
    more = len(items) > limit
    items = items[:limit]
    return {"dataset": dataset_json(row), "items": [item_json(i) for i in items],
            "next_after": items[-1]["id"] if more else None,
            "experiments": [{"id": e["id"], "name": e["name"], "created_at": e["created_at"].isoformat()}
                            for e in experiments]}
