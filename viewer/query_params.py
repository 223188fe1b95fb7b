"""Query-string parameters -> store filters (the ticket search, the date range), and the ticket id of
a path. Every bad query value is a BadRequest naming the field."""
from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import orjson

from collector_api.contract import dates
from collector_api.contract.review_text import VERDICTS
from collector_api.contract.sessions import SESSION_KEY_RE
from collector_api.store.logs.reads import SORTS, STATUSES, Cursor, TicketFilters
from collector_api.store.logs.sessions import SessionFilters

from .auth import Principal
from .errors import BadRequest, NotFound

# Query-string names, in the order the URL carries them.
FILTER_PARAMS = ("client", "start", "end", "status", "resolution", "environment", "version", "ticket",
                 "min_confidence", "max_confidence", "min_duration",
                 "verdict", "flag", "reviewed",  # the latest review's verdict and flag; reviewed or not
                 "eval", "min_score", "max_score",  # an evaluator's latest score within [min, max]
                 "sort", "order", "limit")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_TEXT = 256
DEFAULT_RANGE_DAYS = 30
MAX_PAGE = 500


@dataclass(frozen=True)
class TicketQuery:
    filters: TicketFilters
    sort: str = "time"
    descending: bool = True
    after: Cursor | None = None
    limit: int = 50
    params: dict[str, str] | None = None  # the accepted filter parameters, for links

    def link(self, **overrides: str | None) -> str:
        """The query string of this search with `overrides` (None drops a key)."""
        params = dict(self.params or {})
        for key, value in overrides.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value
        return urlencode(params)


def _text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise BadRequest(f"{name}: at most {MAX_TEXT} characters")
    return value


def parse_moment(name: str, value: str, *, end: bool = False) -> datetime:
    """YYYY-MM-DD (a whole UTC day; an end day is included) or an ISO 8601 date-time."""
    try:
        return dates.parse_moment(name, value, end=end)
    except dates.DateError as exc:
        raise BadRequest(str(exc)) from None


def _number(params: Mapping[str, str], name: str, low: float, high: float) -> float | None:
    value = _text(params, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadRequest(f"{name}: expected a number between {low:g} and {high:g}, got {value[:40]!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise BadRequest(f"{name}: expected a number between {low:g} and {high:g}, got {value[:40]!r}")
    return number


def parse_client(params: Mapping[str, str], principal: Principal) -> str | None:
    value = _text(params, "client")
    if not principal.is_provider:
        return None  # a client sees its own tenant only; the parameter means nothing to it
    if value is not None and not _CLIENT_ID.match(value):
        raise BadRequest("client: expected a client id (letters, digits, '_', '.', '-')")
    return value


def parse_log_id(text: str) -> int:
    """The ticket id of a /tickets/ID path; NotFound for anything but 1 to 18 ASCII digits."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # "²".isdigit() is True
        raise NotFound("no such ticket")
    return int(text)


def parse_range(params: Mapping[str, str], *, default_days: int | None) -> tuple[datetime | None, datetime | None]:
    start_text, end_text = _text(params, "start"), _text(params, "end")
    start = parse_moment("start", start_text) if start_text else None
    end = parse_moment("end", end_text, end=True) if end_text else None
    try:
        return dates.check_range(start, end, default_days=default_days)
    except dates.DateError as exc:
        raise BadRequest(str(exc)) from None


def encode_cursor(cursor: Cursor) -> str:
    value = cursor.value.isoformat() if isinstance(cursor.value, datetime) else cursor.value
    raw = orjson.dumps([value, cursor.executed_at.isoformat(), cursor.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, sort: str) -> Cursor:
    problem = BadRequest("after: not a page cursor of this search (start again from the first page)")
    if len(text) > 400:
        raise problem
    try:
        value, executed_at, log_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        executed = datetime.fromisoformat(executed_at)
        if sort == "time":
            value = executed
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise problem
        if isinstance(log_id, bool) or not isinstance(log_id, int) or executed.tzinfo is None:
            raise problem
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise problem from None
    return Cursor(value, executed, log_id)


_FLAG = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,39}$")


def parse_review_filters(params: Mapping[str, str]) -> dict[str, object]:
    """`verdict=`, `flag=` (of a ticket's latest review) and `reviewed=yes|no` as TicketFilters fields."""
    verdict, flag, reviewed = _text(params, "verdict"), _text(params, "flag"), _text(params, "reviewed")
    if verdict is not None and verdict not in VERDICTS:
        raise BadRequest(f"verdict: expected one of {', '.join(VERDICTS)}, got {verdict[:40]!r}")
    if flag is not None and not _FLAG.match(flag):
        raise BadRequest(f"flag: expected a flag name (a-z, 0-9, '_', '-'), got {flag[:40]!r}")
    if reviewed is not None and reviewed not in ("yes", "no"):
        raise BadRequest(f"reviewed: expected yes or no, got {reviewed[:40]!r}")
    return {"verdict": verdict, "flag": flag, "reviewed": None if reviewed is None else reviewed == "yes"}


_EVALUATOR = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def parse_score_filter(params: Mapping[str, str]) -> dict[str, object]:
    """`eval=NAME` with `min_score=` / `max_score=` (0-1) as TicketFilters fields."""
    name = _text(params, "eval")
    low, high = _number(params, "min_score", 0, 1), _number(params, "max_score", 0, 1)
    if name is None:
        if low is not None or high is not None:
            raise BadRequest("eval: min_score and max_score need eval=<evaluator name>")
        return {}
    if not _EVALUATOR.match(name):
        raise BadRequest(f"eval: expected an evaluator name (a-z, 0-9, '_', '.', '-'), got {name[:40]!r}")
    if low is not None and high is not None and low > high:
        raise BadRequest("min_score: must not exceed max_score")
    return {"evaluator": name, "min_score": low, "max_score": high}


def parse_ticket_query(params: Mapping[str, str], principal: Principal, *, default_limit: int = 50) -> TicketQuery:
    """The search described by a query string, validated; see FILTER_PARAMS for the names."""
    start, end = parse_range(params, default_days=None)
    status = _text(params, "status")
    if status is not None:
        status = status.upper()
        if status not in STATUSES:
            raise BadRequest(f"status: expected one of {', '.join(STATUSES)}, got {status[:40]!r}")
    min_conf = _number(params, "min_confidence", 0, 1)
    max_conf = _number(params, "max_confidence", 0, 1)
    if min_conf is not None and max_conf is not None and min_conf > max_conf:
        raise BadRequest("min_confidence: must not exceed max_confidence")
    filters = TicketFilters(
        client_id=parse_client(params, principal), start=start, end=end, status=status,
        resolution_status=_text(params, "resolution"), environment=_text(params, "environment"),
        workflow_version=_text(params, "version"), ticket_id=_text(params, "ticket"),
        min_confidence=min_conf, max_confidence=max_conf,
        min_duration_s=_number(params, "min_duration", 0, 86_400 * 7),
        **parse_review_filters(params), **parse_score_filter(params),
    )
    sort = _text(params, "sort") or "time"
    if sort not in SORTS:
        raise BadRequest(f"sort: expected one of {', '.join(SORTS)}, got {sort[:40]!r}")
    order = _text(params, "order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequest(f"order: expected asc or desc, got {order[:40]!r}")
    limit = default_limit
    if _text(params, "limit") is not None:
        limit = int(_number(params, "limit", 1, MAX_PAGE))
    after_text = _text(params, "after")
    after = decode_cursor(after_text, sort) if after_text else None
    accepted = {name: params[name].strip() for name in FILTER_PARAMS
                if _text(params, name) is not None and (name != "client" or principal.is_provider)}
    if status:
        accepted["status"] = status
    return TicketQuery(filters, sort, order == "desc", after, limit, accepted)


# --- sessions (viewer.session_pages) --------------------------------------------------------

SESSION_PARAMS = ("client", "start", "end", "recontacted", "limit")
_RECONTACTED = {"yes": True, "no": False}


@dataclass(frozen=True)
class SessionQuery:
    filters: SessionFilters
    after: Cursor | None = None
    limit: int = 50
    params: dict[str, str] | None = None

    def link(self, **overrides: str | None) -> str:
        params = {**(self.params or {}), **overrides}
        return urlencode({k: v for k, v in params.items() if v is not None})


def parse_session_query(params: Mapping[str, str], principal: Principal) -> SessionQuery:
    """The /sessions filters: `client` (providers), `start`/`end` (default: the last 30 days),
    `recontacted` yes|no, `limit` 1-500, `after` (a page cursor)."""
    start, end = parse_range(params, default_days=DEFAULT_RANGE_DAYS)
    recontacted = _text(params, "recontacted")
    if recontacted is not None and recontacted not in _RECONTACTED:
        raise BadRequest("recontacted: expected yes or no")
    limit = int(_number(params, "limit", 1, MAX_PAGE) or 50)
    after_text = _text(params, "after")
    after = decode_cursor(after_text, "time") if after_text else None
    accepted = {k: _text(params, k) for k in SESSION_PARAMS if _text(params, k) is not None}
    filters = SessionFilters(start, end, parse_client(params, principal),
                             _RECONTACTED.get(recontacted) if recontacted else None)
    return SessionQuery(filters, after, limit, accepted)


def parse_session_key(text: str) -> str:
    """The key of a /sessions/KEY path; NotFound for anything that is not a session key."""
    if not SESSION_KEY_RE.match(text):
        raise NotFound("no such session")
    return text

