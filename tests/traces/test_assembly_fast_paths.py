"""Assembly skips the known-value walk for a span whose whole sealed text holds none of the
trace's person values (trace_assembly._replace_known). The skip must never change the result:
these tests compare it with the full walk on hostile text (letter case, Unicode lowercase that
changes length or needs context, JSON escapes, values in keys, nested structures, events)."""
from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_api.store.traces.assembly import StagedSpan
from collector_api.traces.assembly import _open, _replace_known
from collector_api.traces.sealing import cipher, redactor_for
from otel_bridge.known import KnownValues

SECRET = "test-secret-" + "s" * 32
TENANT = "acme"
TRACE = "ab" * 16
R = redactor_for(SECRET, TENANT)


def _staged(index: int, attrs: dict, events: list, pairs: list, name: str = "span", status: str | None = None,
            *, p_last: bool = True) -> StagedSpan:
    span_id = f"{index + 1:016x}"
    payload = {"n": name, "k": None, "s": None, "d": status, "a": attrs, "e": events, "de": 0, "r": {}, "p": pairs}
    if not p_last:  # a payload whose raw values are not the last member: never cut, always walked
        payload = {"p": payload.pop("p"), **payload}
    blob = cipher(SECRET, TENANT).seal(TRACE, span_id, orjson.dumps(payload))
    return StagedSpan(TRACE, span_id, None if index == 0 else f"{1:016x}", 10**18 + index, 10**18 + index + 5, blob)


def _both(spans: list[StagedSpan]) -> tuple[list, list, str]:
    records, per_span, _, texts = _open(TENANT, SECRET, spans)
    known = KnownValues(p for pairs in per_span.values() for p in pairs)
    fast = _replace_known(records, R, known, texts)
    full = _replace_known(records, R, known)
    return fast, full, repr([(s.name, s.status_description, s.attributes, s.events) for s in fast]).lower()


def test_values_in_other_spans_keys_events_and_case_are_replaced() -> None:
    spans = [
        _staged(0, {"user.full_name": "[name:0123456789ab]"}, [], [["Zoë Brannigan", "name"]]),
        _staged(1, {"note": {"ZOË BRANNIGAN": ["said hi"]}, "plain": "nothing here"},
                [["evt", 1, {"brannigan": "x"}]], [], name="for zoë brannigan", status="Brannigan failed"),
        _staged(2, {"plain": "nothing here"}, [], []),
    ]
    fast, full, text = _both(spans)
    assert fast == full
    assert "brannigan" not in text and "zoë" not in text
    assert fast[2] is not None and "nothing here" in text


def test_value_with_json_escapes_or_sigma_walks_every_span() -> None:
    for raw in ('Ann "Bo" Rossi', "Ann\\Rossi", "ΟΔΥΣΣΕΑΣ Papas"):
        spans = [_staged(0, {}, [], [[raw, "name"]]), _staged(1, {"msg": f"hello {raw} and {raw.lower()}"}, [], [])]
        fast, full, text = _both(spans)
        assert fast == full, raw
        assert raw.lower() not in text


def test_payload_without_raw_values_last_is_walked() -> None:
    spans = [_staged(0, {}, [], [["Brannigan", "name"]], p_last=False),
             _staged(1, {"msg": "dear Brannigan"}, [], [], p_last=False)]
    fast, full, text = _both(spans)
    assert fast == full and "brannigan" not in text


_ALPHABET = st.sampled_from(list("aAnNoO zZ@.-_'\"\\\n\tKkİıiΣσςßẞé€") + ["\u212a", "\u0130", "ǅ", "ﬁ"])
_TEXT = st.text(_ALPHABET, max_size=24)
_VALUE = st.recursive(_TEXT, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                      max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(known=st.lists(st.text(_ALPHABET, min_size=3, max_size=8), min_size=1, max_size=3),
       spans=st.lists(st.tuples(st.dictionaries(_TEXT, _VALUE, max_size=3), _TEXT,
                                st.lists(st.tuples(_TEXT, st.dictionaries(_TEXT, _VALUE, max_size=2)), max_size=2)),
                      min_size=1, max_size=4))
def test_skip_never_changes_the_result(known: list[str], spans: list) -> None:
    staged = [_staged(0, {}, [], [[k, "name"] for k in known])]
    staged += [_staged(i + 1, attrs, [[en, 5, ea] for en, ea in events], [], name=name)
               for i, (attrs, name, events) in enumerate(spans)]
    fast, full, _ = _both(staged)
    assert fast == full
