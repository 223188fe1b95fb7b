"""Pure pieces of the viewer: waterfall layout, CSV escaping, cursors, filter parsing."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collector_api.store.logs.reads import Cursor
from viewer.auth import LoginLimiter, Principal, SessionCodec
from viewer.errors import BadRequest
from viewer.exports import csv_cell
from viewer.pages import build_waterfall
from viewer.query_params import decode_cursor, encode_cursor, parse_ticket_query
from viewer.views.login import safe_next

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
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
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
    assert query.filters.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert query.filters.end == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.parametrize("target, expected", [
    ("/tickets?x=1", "/tickets?x=1"), ("//evil.example", "/"), ("https://evil.example", "/"),
    ("/\\evil.example", "/"), (None, "/"), ("tickets", "/"),
])
def test_login_redirects_only_to_local_paths(target, expected):
    assert safe_next(target) == expected


def test_session_cookie_is_signed_and_expires():
    codec = SessionCodec("k" * 32, max_age_s=60)
    cookie, csrf = codec.new_session(7)
    assert codec.read_session(cookie) == {"uid": 7, "csrf": csrf, "ep": 0}
    assert codec.read_session(cookie + "x") is None
    assert SessionCodec("other" * 8, 60).read_session(cookie) is None
    assert SessionCodec("k" * 32, max_age_s=-1).read_session(cookie) is None


def test_login_limiter_counts_per_key():
    limiter = LoginLimiter(per_minute=2)
    assert limiter.allow("ip:1", "email:a") and limiter.allow("ip:1", "email:a")
    assert not limiter.allow("ip:1", "email:b")  # the IP is over its limit
    assert limiter.allow("ip:2", "email:c")


# --- number formatting ---------------------------------------------------------------------

from viewer.formatting import compact, duration_ms, duration_s, nice_axis, ordered_metrics  # noqa: E402


@pytest.mark.parametrize("ms, expected", [
    (0, "0 ms"), (0.00042, "420 ns"), (0.042, "42.0 µs"), (0.42, "420 µs"), (0.9996, "1.00 ms"),
    (4.25, "4.25 ms"), (93.94, "93.9 ms"), (457.8, "458 ms"), (999.96, "1.00 s"), (1640.4, "1.64 s"),
    (12_345_678, "12,346 s"), (None, "–"), (float("nan"), "nan"),
])
def test_durations_use_a_readable_unit(ms, expected):
    assert duration_ms(ms) == expected


def test_tiny_ticket_durations_are_not_zero():
    assert duration_s(0.0004) == "400 µs" and duration_s(1.6404) == "1.64 s" and duration_s(0) == "0 ms"


@pytest.mark.parametrize("count, expected", [
    (950, "950"), (35_114, "35.1k"), (146_000, "146k"), (305_504, "306k"), (999_999, "1M"),
    (1_234_567, "1.23M"), (None, "–"),
])
def test_compact_counts(count, expected):
    assert compact(count) == expected


@pytest.mark.parametrize("total, end, labels", [
    (1000, 1000, ["0", "250 ms", "500 ms", "750 ms", "1,000 ms"]),
    (4050, 5000, ["0", "1 s", "2 s", "3 s", "4 s", "5 s"]),
    (0.42, 0.5, ["0", "100 µs", "200 µs", "300 µs", "400 µs", "500 µs"]),
    (7.3, 7.5, ["0", "2.5 ms", "5.0 ms", "7.5 ms"]),
    (0, 1, ["0", "250 µs", "500 µs", "750 µs", "1,000 µs"]),  # one unit on the whole axis
])
def test_waterfall_axis_has_even_round_ticks(total, end, labels):
    got_end, got_labels = nice_axis(total)
    assert got_end == pytest.approx(end) and got_end >= total
    assert got_labels == labels


def test_waterfall_bars_follow_the_axis_end():
    rows = build_waterfall([{"name": "root", "span_id": "r", "start_offset_ms": 0, "duration_ms": 4050}], 5000)
    assert (rows[0]["x"], rows[0]["w"]) == (0, 810)


def test_metrics_are_grouped_outcome_first_and_formatted():
    metrics = {"zeta": 1, "tool_errors": 0, "cost_usd": 0.0294, "evidence_items": 5, "input_tokens": 8593,
               "retrieval_top_score": 0.83, "execution_time_seconds": 0.0004, "hallucination_risk": 0.374,
               "overall_confidence": 0.69, "react_iterations": 4, "mean_react_iteration_ms": 114.458,
               "draft_length_chars": 215, "alpha": None}
    groups = ordered_metrics(metrics)
    assert [title for title, _ in groups] == ["Outcome", "Tokens and cost", "Retrieval", "Evidence", "Errors", "Other"]
    flat = [key for _, items in groups for key, _ in items]
    assert flat[:4] == ["overall_confidence", "hallucination_risk", "execution_time_seconds", "react_iterations"]
    assert flat[-4:] == ["alpha", "draft_length_chars", "mean_react_iteration_ms", "zeta"]
    values = dict(item for _, items in groups for item in items)
    assert values["execution_time_seconds"] == "400 µs" and values["cost_usd"] == "$0.0294"
    assert values["input_tokens"] == "8,593" and values["mean_react_iteration_ms"] == "114 ms"
    assert values["draft_length_chars"] == "215 chars" and values["alpha"] == "–"
    assert values["overall_confidence"] == "0.69"
