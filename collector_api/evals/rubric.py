"""The judge's prompt and the strict reading of its answer. Pure (no I/O).

The prompt is filled from the STORED log only (already redacted by the bridge: personal values
are tokens), by named placeholders replaced as plain text (`{{draft}}`, `{{evidence}}`,
`{{retrieval}}`, `{{ticket}}`, `{{status}}`, `{{resolution}}`): never str.format, whose field
syntax would let a rubric read attributes of the values. Each value is capped in length.

An answer is valid only when the message content is a JSON object with exactly `score` (a
number in [0, 1], not a boolean) and `reason` (a string of at most MAX_REASON_CHARS); anything
else is an InvalidAnswer, counted and never stored as a score.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from collector_api.evals.deterministic import draft_of, section

MAX_FIELD_CHARS = 6000
MAX_REASON_CHARS = 500
MAX_ANSWER_CHARS = 4000
DEFAULT_RUBRIC = (
    "You grade a customer-support agent's drafted reply. Personal data appears as tokens such as"
    " [email:abc123]; treat them as opaque.\n\n"
    "Ticket:\n{{ticket}}\n\nEvidence the agent gathered:\n{{evidence}}\n\nRetrieval results:\n{{retrieval}}\n\n"
    "Outcome: {{status}} / {{resolution}}\n\nDraft reply:\n{{draft}}\n\n"
    "Score from 0 (wrong, unsupported or unhelpful) to 1 (correct, supported by the evidence, helpful)."
)
SYSTEM = ('Answer with one JSON object and nothing else: {"score": <number from 0 to 1>,'
          ' "reason": "<one short sentence>"}.')


class InvalidAnswer(ValueError):
    """The judge's answer is not exactly {score in [0, 1], reason}."""


@dataclass(frozen=True)
class JudgeAnswer:
    score: float
    reason: str


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "…"


def fill_rubric(rubric: str | None, log: dict[str, Any]) -> str:
    """The user message for `log` (a stored log document)."""
    values = {
        "draft": _text(draft_of(log)),
        "evidence": _text(section(log, "trace", "evidence")),
        "retrieval": _text(section(log, "trace", "retrieval")),
        "ticket": _text(section(log, "trace", "ticket")),
        "status": _text(section(log, "outcome", "status")),
        "resolution": _text(section(log, "outcome", "resolution_status")),
    }
    template = rubric or DEFAULT_RUBRIC
    out, i = [], 0
    while i < len(template):  # one left-to-right pass: a value is never scanned for placeholders
        if template.startswith("{{", i):
            end = template.find("}}", i + 2)
            key = template[i + 2:end].strip() if end > 0 else None
            if key in values:
                out.append(values[key])
                i = end + 2
                continue
        out.append(template[i])
        i += 1
    return "".join(out)


def parse_answer(content: object) -> JudgeAnswer:
    """The judge's message content as a JudgeAnswer; raises InvalidAnswer (see the module's docstring)."""
    if not isinstance(content, str) or len(content) > MAX_ANSWER_CHARS:
        raise InvalidAnswer("no text answer" if not isinstance(content, str) else "answer too long")
    try:
        data = json.loads(content)
    except ValueError:
        raise InvalidAnswer(f"not JSON: {content[:60]!r}") from None
    if not isinstance(data, dict) or set(data) != {"score", "reason"}:
        raise InvalidAnswer("expected exactly the keys score and reason")
    score, reason = data["score"], data["reason"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InvalidAnswer(f"score is not a number: {str(score)[:40]!r}")
    if not 0 <= score <= 1:
        raise InvalidAnswer(f"score {score} is outside [0, 1]")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise InvalidAnswer(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
    return JudgeAnswer(float(score), reason.strip())
