"""Pure pieces of the viewer: waterfall layout, CSV escaping, cursors, filter parsing."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from collector_api.store.reads import Cursor
from viewer.auth import LoginLimiter, Principal, SessionCodec
from viewer.errors import BadRequest
from viewer.filters import decode_cursor, encode_cursor, parse_ticket_query
from viewer.views.login import safe_next
from viewer.views.ticket import build_waterfall
from viewer.views.tickets import csv_cell

PROVIDER = Principal(role="provider", client_id=None)
CLIENT = Principal(role="client", client_id="acme")


def test_waterfall_survives_cycles_and_junk():
    spans = [
        {"name": "a", "span_id": "1", "parent_span_id": "2", "start_offset_ms": 0, "duration_ms": 10},
        {"name": "b", "span_id": "2", "parent_span_id": "1", "start_offset_ms": 5, "duration_ms": 5},
        {"name": "self", "span_id": "3", "parent_span_id": "3", "start_offset_ms": float("nan"), "duration_ms": -4},
        "not a span", None, 42,
    ]
    rows = build_waterfall(spans)
    assert sorted(r["name"] for r in rows) == ["a", "b", "self"]
    assert all(0 <= r["x"] <= 1000 and 0 < r["w"] <= 1000 for r in rows)


def test_waterfall_bars_are_proportional():
    rows = build_waterfall([
        {"name": "root", "span_id": "r", "start_offset_ms": 0, "duration_ms": 1000},
        {"name": "child", "span_id": "c", "parent_span_id": "r", "start_offset_ms": 250, "duration_ms": 500},
    ])
    assert [(r["name"], r["depth"], r["x"], r["w"]) for r in rows] == [("root", 0, 0, 1000), ("child", 1, 250, 500)]


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-2", "'-2"), ("@cmd", "'@cmd"), ("\tx", "'\tx"),
    ("plain", "plain"), (-2.5, -2.5), (None, ""),
])
def test_csv_cells_cannot_become_formulas(value, expected):
    assert csv_cell(value) == expected


def test_cursor_round_trip_and_rejects_garbage():
    now = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)
    for sort, value in (("time", now), ("confidence", 0.5), ("duration", -1.0)):
        cursor = Cursor(value, now, 42)
        assert decode_cursor(encode_cursor(cursor), sort) == cursor
    for junk in ("x" * 500, "bm90IGpzb24", "W1tdLDEsMl0"):  # too long, "not json", [[],1,2]
        with pytest.raises(BadRequest):
            decode_cursor(junk, "confidence")


def test_client_filter_is_ignored_for_client_users():
    assert parse_ticket_query({"client": "globex"}, CLIENT).filters.client_id is None
    assert parse_ticket_query({"client": "globex"}, PROVIDER).filters.client_id == "globex"
    assert "client" not in parse_ticket_query({"client": "globex"}, CLIENT).params


def test_end_day_is_included():
    query = parse_ticket_query({"start": "2026-11-01", "end": "2026-11-01"}, PROVIDER)
    assert query.filters.start == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert query.filters.end == datetime(2026, 11, 2, tzinfo=timezone.utc)


@pytest.mark.parametrize("target, expected", [
    ("/tickets?x=1", "/tickets?x=1"), ("//evil.example", "/"), ("https://evil.example", "/"),
    ("/\\evil.example", "/"), (None, "/"), ("tickets", "/"),
])
def test_login_redirects_only_to_local_paths(target, expected):
    assert safe_next(target) == expected


def test_session_cookie_is_signed_and_expires():
    codec = SessionCodec("k" * 32, max_age_s=60)
    cookie, csrf = codec.new_session(7)
    assert codec.read_session(cookie) == {"uid": 7, "csrf": csrf}
    assert codec.read_session(cookie + "x") is None
    assert SessionCodec("other" * 8, 60).read_session(cookie) is None
    assert SessionCodec("k" * 32, max_age_s=-1).read_session(cookie) is None


def test_login_limiter_counts_per_key():
    limiter = LoginLimiter(per_minute=2)
    assert limiter.allow("ip:1", "email:a") and limiter.allow("ip:1", "email:a")
    assert not limiter.allow("ip:1", "email:b")  # the IP is over its limit
    assert limiter.allow("ip:2", "email:c")
