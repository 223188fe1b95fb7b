"""The agent's final answer of a trace (the log's draft response), from whichever convention
carries it. Pure.

First the root span's own output (OpenInference ``output.value``, OpenLLMetry
``traceloop.entity.output``) when it is text; else the text of the last LLM call's reply (OTel
GenAI ``gen_ai.output.messages``, OpenInference ``llm.output_messages.N.message.content``,
OpenLLMetry ``gen_ai.completion.N.content``). The strings were scrubbed on arrival and the
trace's person values replaced at assembly, like every other attribute.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collector_api.contract.jsontext import loads_bounded
from otel_bridge.spanrecord import SpanRecord

MAX_CHARS = 20_000
ROOT_OUTPUT = ("output.value", "traceloop.entity.output")
_TEXT_MIME = ("text/plain", "text/markdown", "")


def _text(value: Any) -> str | None:
    return value.strip()[:MAX_CHARS] if isinstance(value, str) and value.strip() else None


def _root_text(attrs: Mapping[str, Any]) -> str | None:
    """The root's output when it is text: a JSON string is decoded; a JSON object is not a draft."""
    for key in ROOT_OUTPUT:
        value = attrs.get(key)
        if not isinstance(value, str) or not value.strip():
            continue
        mime = (attrs.get("output.mime_type") or "") if key == "output.value" else ""
        if value.lstrip()[:1] in ('"', "{", "[") or mime not in _TEXT_MIME:
            try:
                decoded = loads_bounded(value)
            except ValueError:
                decoded = value if mime in _TEXT_MIME else None
            value = decoded
        if _text(value):
            return _text(value)
    return None


def _genai_reply(value: Any) -> str | None:
    """Text parts of the last assistant message of ``gen_ai.output.messages`` (JSON)."""
    try:
        messages = loads_bounded(value) if isinstance(value, str) else value
    except ValueError:
        return None
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        text = _message_text(message) if isinstance(message, dict) else None
        if text:
            return text[:MAX_CHARS]
    return None


def _message_text(message: Mapping[str, Any]) -> str | None:
    """A message's text: GenAI ``parts`` of type text, else an OpenAI-style ``content`` (a string
    or a list of ``{"type": "text", "text": ...}``), as apps that set the attribute by hand write it."""
    parts = message.get("parts")
    if isinstance(parts, list):
        texts = [p.get("content") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    elif isinstance(message.get("content"), list):
        texts = [p.get("text") for p in message["content"] if isinstance(p, dict) and p.get("type") == "text"]
    else:
        texts = [message.get("content")]
    return "\n".join(t.strip() for t in texts if isinstance(t, str) and t.strip()) or None


def _llm_reply(attrs: Mapping[str, Any]) -> str | None:
    return (_genai_reply(attrs.get("gen_ai.output.messages"))
            or _text(attrs.get("llm.output_messages.0.message.content"))
            or _text(attrs.get("gen_ai.completion.0.content")))


def final_answer(records: Sequence[SpanRecord], root: SpanRecord, llm_spans: Sequence[SpanRecord]) -> str | None:
    """The trace's final answer (see the module docstring), or None."""
    answer = _root_text(root.attributes)
    if answer:
        return answer
    for span in sorted(llm_spans, key=lambda r: (r.end_time or r.start_time, r.span_id), reverse=True):
        answer = _llm_reply(span.attributes)
        if answer:
            return answer
    return None
