"""Known values in one pass (otel_bridge.known): the same matches as the regex it replaced (a
value is found unless it continues a longer word of its own class), in time that does not grow
with the number of values, capped per trace."""
from __future__ import annotations

import re
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_bridge.known import KnownValues


def _edge(ch: str, behind: bool) -> str:
    cls = r"[^\W\d_]" if ch.isalpha() else r"\d" if ch.isdigit() else None
    if cls is None:
        return ""
    return f"(?<!{cls})" if behind else f"(?!{cls})"


def reference(text: str, values: list[str]) -> str:
    """The alternation regex of every value, longest first (what the collector used to run)."""
    ordered = sorted(set(values), key=len, reverse=True)
    alts = "|".join(f"{_edge(v[0], True)}{re.escape(v)}{_edge(v[-1], False)}" for v in ordered)
    return re.sub(f"(?i:{alts})", "[T]", text) if ordered else text


LETTERS = "aAnNoOzZé1 2@.-_'"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.text("aAnNoOzZé12@.-_'", min_size=3, max_size=7).filter(lambda v: v[0].isalnum()
                                                                                   and v == v.strip()),
                       min_size=1, max_size=4),
       text=st.text(LETTERS, max_size=40))
def test_same_matches_as_the_regex_it_replaced(values: list[str], text: str) -> None:
    known = KnownValues([(v, "user") for v in values], cap=None)
    assert known.replace(text, lambda kind, raw: "[T]") == reference(text, values)


def test_time_does_not_grow_with_the_number_of_values() -> None:
    text = ("Dear customer, your order 4411 of the blue kettle ships on Monday; " * 240)[:16_000]

    def cost(n: int) -> float:
        known = KnownValues([(f"Person{i:05d} Surname{i:05d}", "name") for i in range(n)]
                            + [("blue kettle", "text")], cap=None)
        started = time.perf_counter()
        for _ in range(5):
            out = known.replace(text, lambda kind, raw: "[x]")
        assert "blue kettle" not in out
        return (time.perf_counter() - started) / 5

    small, large = cost(10), cost(10_000)
    assert large < 0.05, large  # 16 KB against 10,000 values (20,000 with the parts)
    assert large < small * 4 + 0.005, (small, large)


def test_the_cap_keeps_the_first_values_and_counts_the_rest() -> None:
    known = KnownValues([(f"user-{i:04d}", "user") for i in range(300)] + [("user-0001", "user")], cap=256)
    assert len(known) == 256 and known.over_cap == 44
    assert known.replace("from user-0255 and user-0256", lambda k, r: "[T]") == "from [T] and user-0256"


def test_tokens_are_never_searched_and_name_parts_stay_out_of_identifiers() -> None:
    known = KnownValues([("Claude Martin", "name"), ("ada", "user")])
    assert known.replace("[email:ada123] ada", lambda k, r: "[T]") == "[email:ada123] [T]"
    assert known.replace("claude-sonnet-4-20250514", lambda k, r: "[T]", parts=False) == "claude-sonnet-4-20250514"
    assert known.replace("Dear Claude, CLAUDE\nMARTIN", lambda k, r: "[T]") == "Dear [T], [T]"


def test_a_ticket_over_the_cap_on_the_bridge_hashes_its_free_text_whole() -> None:
    """More person values than the cap (record.pii of 300 names): the ones beyond it cannot be
    searched for, so the ticket's free text is hashed whole; identifiers and numbers stay."""
    import json as _json

    from otel_bridge import attributes as A
    from otel_bridge.assemble import build_workflow_log
    from otel_bridge.pii import Redactor
    from otel_bridge.spanrecord import EventRecord, SpanRecord

    names = [f"Person{i:03d} Zed" for i in range(300)]
    events = (EventRecord(A.EVENT_PII, 10**18 + 1, {A.PAYLOAD: _json.dumps({"values": names, "kind": "name"})}),
              EventRecord(A.EVENT_DRAFT, 10**18 + 2, {A.PAYLOAD: _json.dumps({"text": f"Dear {names[-1]}"})}),
              EventRecord(A.EVENT_LLM_CALL, 10**18 + 3, {A.PAYLOAD: _json.dumps(
                  {"model": "claude-sonnet-4-20250514", "input_tokens": 5, "prompt": f"about {names[-2]}"})}))
    root = SpanRecord("support", 9, 1, None, 10**18, 10**18 + 10, "UNSET", None,
                      {A.KIND: A.KIND_WORKFLOW, A.WORKFLOW_NAME: "support"}, events, "internal", 0)
    log = build_workflow_log([root], redactor=Redactor(b"k" * 32))
    text = _json.dumps(log)
    assert "Person299" not in text and "Person298" not in text
    assert log["trace"]["output"]["draft"].startswith("[text:")
    [call] = log["trace"]["llm_calls"]
    assert call["model"] == "claude-sonnet-4-20250514" and call["input_tokens"] == 5
