"""The deterministic evaluators: pure functions of one stored (already redacted) workflow log.

Each returns a `Verdict`: a score in [0, 1] with a short reason, or score None when the log
gives it nothing to judge (stored as an outcome `not_applicable`, never as a score). No I/O,
no regular expression built from user input: policy patterns are matched as plain phrases
(collector_api.evals.policy), so a pattern cannot make matching slow.

Where the inputs come from (docs/workflow-log.md): the draft is `trace.output.draft`; the
evidence is `trace.evidence` (items, conflicts, resolution) and the retrieval results are
`trace.retrieval.<source>.results` (ids, titles and any other recorded fields); the ticket's
texts are `trace.ticket` (subject, description, messages: one token each in the default
`hash` content mode, text with tokens inside in `scrub` mode).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from collector_api.evals.language import detect_language

MAX_TEXT_CHARS = 20_000  # what an evaluator reads of one text (drafts are truncated by the bridge anyway)
TRUNCATION_MARK = re.compile(r"…\[truncated \d+ chars\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Checkable facts of a sentence: order/ticket ids (A-77, INV2024-01), dates, numbers, and
# capitalised words not opening the sentence (product names). Bounded, linear patterns.
_ID = re.compile(r"\b[A-Za-z]{1,10}-?\d{1,12}(?:-\d{1,12})?\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NAME = re.compile(r"(?<=\s)[A-Z][a-zA-Z0-9]{2,40}\b")
_TOKEN = re.compile(r"\[[a-z_]+:[0-9a-f]{6,64}\]")  # a redaction token is not a claim
TERMINAL = (".", "!", "?", "…", ")", '"', "”", "»")


@dataclass(frozen=True)
class Verdict:
    score: float | None
    reason: str


def section(log: dict[str, Any], *path: str) -> Any:
    """log[path...] or None when any step is missing or not an object."""
    node: Any = log
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def draft_of(log: dict[str, Any]) -> str | None:
    draft = section(log, "trace", "output", "draft")
    return draft[:MAX_TEXT_CHARS] if isinstance(draft, str) else None


def flatten_text(value: Any, out: list[str], budget: list[int]) -> None:
    """Every string and number inside `value`, depth-first, until `budget` characters."""
    if budget[0] <= 0:
        return
    if isinstance(value, str):
        out.append(value[:budget[0]])
        budget[0] -= len(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        out.append(str(value))
    elif isinstance(value, dict):
        for item in value.values():
            flatten_text(item, out, budget)
    elif isinstance(value, list):
        for item in value:
            flatten_text(item, out, budget)


def evidence_text(log: dict[str, Any]) -> str:
    """The evidence section and every retrieval result, as one lower-cased text."""
    out: list[str] = []
    budget = [MAX_TEXT_CHARS * 5]
    flatten_text(section(log, "trace", "evidence"), out, budget)
    retrieval = section(log, "trace", "retrieval")
    if isinstance(retrieval, dict):
        for source in retrieval.values():
            flatten_text(section(source, "results") if isinstance(source, dict) else None, out, budget)
    return " \n ".join(out).lower()


def claim_facts(sentence: str) -> set[str]:
    """The checkable facts of one sentence (lower-cased); empty: the sentence claims nothing checkable."""
    text = " " + _TOKEN.sub(" ", sentence).strip()
    facts: set[str] = set()
    taken: list[tuple[int, int]] = []
    for pattern in (_DATE, _ID, _NUMBER):  # a number inside a date or an id is not a fact of its own
        for m in pattern.finditer(text):
            if any(c.isdigit() for c in m.group(0)) and not any(a <= m.start() < b for a, b in taken):
                facts.add(m.group(0).rstrip(".,"))
                taken.append(m.span())
    first = re.match(r"\s*\S+", text)
    facts |= {m.group(0) for m in _NAME.finditer(text) if first is None or m.start() >= first.end()}
    return {f.lower() for f in facts}


def groundedness(log: dict[str, Any]) -> Verdict:
    """Share of the draft's claims (sentences with a number, id, date or product name) whose
    every fact appears in the evidence or the retrieval results. No claim: not applicable."""
    draft = draft_of(log)
    if not draft or not draft.strip():
        return Verdict(None, "no draft")
    claims = [facts for s in _SENTENCE_END.split(TRUNCATION_MARK.sub("", draft)) if (facts := claim_facts(s))]
    if not claims:
        return Verdict(None, "the draft makes no checkable claim")
    evidence = evidence_text(log)
    grounded = sum(1 for facts in claims if all(f in evidence for f in facts))
    missing = sorted({f for facts in claims for f in facts if f not in evidence})[:5]
    reason = f"{grounded} of {len(claims)} claims found in the evidence"
    return Verdict(grounded / len(claims), reason + (f"; not found: {', '.join(missing)}" if missing else ""))


def draft_complete(log: dict[str, Any]) -> Verdict:
    """1 a complete draft; 0 no draft, an empty one or one the bridge truncated; 0.5 a draft that
    ends mid-sentence."""
    draft = draft_of(log)
    if draft is None or not draft.strip():
        return Verdict(0.0, "no draft" if draft is None else "empty draft")
    if TRUNCATION_MARK.search(draft):
        return Verdict(0.0, "draft truncated")
    if not draft.rstrip().endswith(TERMINAL):
        return Verdict(0.5, "the draft ends mid-sentence")
    return Verdict(1.0, "complete")


def ticket_text(log: dict[str, Any]) -> str:
    ticket = section(log, "trace", "ticket")
    out: list[str] = []
    if isinstance(ticket, dict):
        for key in ("subject", "description", "body", "messages"):
            flatten_text(ticket.get(key), out, [MAX_TEXT_CHARS])
    return _TOKEN.sub(" ", " ".join(out))


def language_match(log: dict[str, Any]) -> Verdict:
    """1 when the draft is in the ticket's language, 0 when not; not applicable when either
    language cannot be told (a hashed ticket text, too few words)."""
    draft = draft_of(log)
    if not draft:
        return Verdict(None, "no draft")
    asked, answered = detect_language(ticket_text(log)), detect_language(_TOKEN.sub(" ", draft))
    if asked is None or answered is None:
        return Verdict(None, f"language undetermined (ticket: {asked or '?'}, draft: {answered or '?'})")
    if asked == answered:
        return Verdict(1.0, f"both {asked}")
    return Verdict(0.0, f"ticket in {asked}, draft in {answered}")
