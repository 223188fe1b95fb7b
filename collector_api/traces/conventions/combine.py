"""One span's facts from every convention it carries, by precedence, and its tokens normalized.

Precedence, field by field: `flusso.*` > OTel GenAI > OpenInference > OpenLLMetry > generic
(``session.id``, ``user.id``). Pure.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import otel_bridge.attributes as A
from collector_api.traces.conventions import genai, openinference, openllmetry
from collector_api.traces.conventions.common import first, number, text
from otel_bridge.spanrecord import EventRecord, SpanRecord

Reader = Callable[[Mapping[str, Any], Sequence[EventRecord]], dict[str, Any]]


def _flusso(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> dict[str, Any]:
    facts = {"kind": text(attrs.get(A.KIND)), "cost": number(attrs.get(A.LLM_COST_USD))}
    return {k: v for k, v in facts.items() if v is not None}


def _generic(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> dict[str, Any]:
    facts = {"session_id": text(attrs.get("session.id")),
             "user_id": text(first(attrs, ("user.id", "enduser.id", "enduser.pseudo.id")))}
    return {k: v for k, v in facts.items() if v is not None}


def _always(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> bool:
    return True


Applies = Callable[[Mapping[str, Any], Sequence[EventRecord]], bool]
# (whether the reader can find anything in a span, the reader), by precedence. The checks are
# cheap key scans; most spans carry one convention, so the others' readers are skipped
# (tests/traces/test_conventions.py checks each check covers every key its reader reads).
READERS: tuple[tuple[Applies, Reader], ...] = (
    (_always, _flusso), (genai.applies, genai.read), (openinference.applies, openinference.read),
    (openllmetry.applies, openllmetry.read), (_always, _generic))


def facts(span: SpanRecord) -> dict[str, Any]:
    """Every field any convention gives for `span`, the highest-precedence one winning."""
    out: dict[str, Any] = {}
    attrs, events = span.attributes, span.events
    for applies, read in READERS:
        if applies(attrs, events):
            for key, value in read(attrs, events).items():
                out.setdefault(key, value)
    return out


@dataclass(frozen=True)
class Tokens:
    input: int | None  # cached tokens included (the GenAI convention)
    output: int | None
    cache_read: int
    cache_write: int
    split_known: bool  # False when only a total was given: no input/output split, so no price


def tokens(f: Mapping[str, Any]) -> Tokens:
    """Input/output/cache tokens of one call. A total fills a missing part only; cache tokens are
    counted once: an input that excludes them (Anthropic's own ``input_tokens``: input + cache +
    output = total, or cache > input) gets them added, one that includes them is kept."""
    inp, out, total = f.get("input_tokens"), f.get("output_tokens"), f.get("total_tokens")
    read, write = f.get("cache_read") or 0, f.get("cache_write") or 0
    split_known = True
    if inp is None and total is not None:
        if out is not None:
            inp = max(0, total - out)
        else:
            inp, split_known = total, False
    elif out is None and total is not None and inp is not None:
        out = max(0, total - inp)
    if inp is not None and read + write:
        excluded = total is not None and inp + read + write + (out or 0) == total and inp + (out or 0) != total
        if excluded or read + write > inp:
            inp += read + write
    return Tokens(inp, out, read, write, split_known)
