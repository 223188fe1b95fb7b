"""``record.*``: what a workflow author tells the bridge about a ticket.

Each call adds one ``flusso.*`` event (a JSON payload) to the innermost *bridge* span (the
current ``@node``, else the ``@workflow`` root), never to whatever span is current: a host
span (an LLM auto-instrumentation's, started inside a node) is exported by the host, and raw
payloads never sit on a span the host can export. The bridge's spans come from its private
TracerProvider, which no host processor sees. The worker turns the events into the log's
sections. Calls outside a ``@workflow`` warn once and do nothing. No call here raises because
of telemetry: a failure is logged and the workflow goes on.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import itertools
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context

from otel_bridge import attributes as A

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

# The root span of the ticket being handled in this context (set by @workflow). Follows
# asyncio tasks and copied contexts exactly like the OTel context does.
current_root: contextvars.ContextVar = contextvars.ContextVar("otel_bridge_root", default=None)
# The innermost bridge span (node or root), kept in the OTel context the decorators make
# current: host spans started inside a node inherit it, so record.* finds the node under them.
BRIDGE_SPAN_KEY = otel_context.create_key("otel_bridge.span")

# Strings longer than this are cut at record time so a huge value never sits in memory;
# the final limit (max_string_chars) is applied when the log is built.
RECORD_MAX_STRING_CHARS = 16000
_MAX_ITEMS = 200
_MAX_LIST_ITEMS = 10000  # an endless iterator passed as results never hangs the workflow
_warned_outside = False
_warned_failed: set[str] = set()


def _guarded(fn: F) -> F:
    """A public helper never raises: any failure (odd arguments included) is logged once per
    helper as a warning and the call returns None."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            try:
                if fn.__name__ not in _warned_failed:
                    _warned_failed.add(fn.__name__)
                    logger.warning("otel_bridge: record.%s() failed (%s); ignored (warned once)",
                                   fn.__name__, type(exc).__name__)
            except Exception:  # pragma: no cover - logging itself broken
                pass
            return None

    return wrapper  # type: ignore[return-value]


def _as_list(value: Any) -> list[Any]:
    """Any iterable (list, generator, numpy array, DataFrame rows), a single mapping or a
    scalar as a list, without asking the truth value of arbitrary objects."""
    if value is None:
        return []
    if isinstance(value, list):
        return value[:_MAX_LIST_ITEMS] if len(value) > _MAX_LIST_ITEMS else list(value)
    if isinstance(value, (str, bytes, bytearray, memoryview, Mapping)):
        return [value]
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)[:_MAX_LIST_ITEMS]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and hasattr(value, "columns"):  # a pandas DataFrame: one dict per row
        try:
            rows = to_dict(orient="records")
            if isinstance(rows, list):
                return rows[:_MAX_LIST_ITEMS]
        except Exception:
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays, pandas Series
    if callable(tolist):
        try:
            out = tolist()
            return out[:_MAX_LIST_ITEMS] if isinstance(out, list) else [out]
        except Exception:
            pass
    if isinstance(value, Iterable):
        try:
            return list(itertools.islice(iter(value), _MAX_LIST_ITEMS))
        except Exception:
            pass
    return [value]


def _warn_outside(what: str) -> None:
    global _warned_outside
    if not _warned_outside:
        _warned_outside = True
        logger.warning("otel_bridge: record.%s() called outside a @workflow; ignored (warned once)", what)


def _jsonable(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        if isinstance(value, str) and len(value) > RECORD_MAX_STRING_CHARS:
            return value[:RECORD_MAX_STRING_CHARS] + f"…[truncated {len(value) - RECORD_MAX_STRING_CHARS} chars]"
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return f"[bytes:sha256={hashlib.sha256(data).hexdigest()[:16]} size={len(data)}]"
    if depth > 16:
        return "<too deep>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in list(value.items())[:_MAX_ITEMS]}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in list(value)[:_MAX_ITEMS]]
    try:
        return _jsonable(repr(value), depth + 1)
    except Exception:  # a value that cannot even be shown is never shipped
        return "<redaction failed>"


_orjson: Any
try:  # optional: faster serialization of record payloads on the workflow's thread (docs/benchmarks-bridge.md)
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None
_FAST_BODY_MAX_CHARS = 64 * 1024


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview, set, frozenset, tuple)):
        return _jsonable(value)
    try:
        return repr(value)
    except Exception:
        return "<redaction failed>"


def _encode(payload: dict[str, Any]) -> str:
    """The payload as JSON. Fast path: the C encoder; anything odd (NaN, odd keys, a huge
    value to cut) takes the careful path through _jsonable."""
    try:
        if _orjson is not None:
            body = _orjson.dumps(payload, default=_default, option=_orjson.OPT_NON_STR_KEYS).decode("utf-8")
        else:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default)
        if len(body) <= _FAST_BODY_MAX_CHARS:
            return body
    except (TypeError, ValueError):
        pass
    return json.dumps(_jsonable(payload), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _target_span() -> Any:
    """The bridge span record.* writes to: the innermost @node/@workflow span of the current
    ticket (never a host span); None outside a @workflow."""
    root = current_root.get()
    if root is None:
        return None
    span: Any = otel_context.get_value(BRIDGE_SPAN_KEY)
    if span is None or not span.is_recording() or \
            span.get_span_context().trace_id != root.get_span_context().trace_id:
        return root
    return span


def _emit(what: str, event: str, payload: dict[str, Any], span_attributes: Mapping[str, Any] | None = None,
          span: Any = None) -> None:
    try:
        if span is None:
            span = _target_span()
            if span is None:
                _warn_outside(what)
                return
        span.add_event(event, {A.PAYLOAD: _encode(payload)})
        if span_attributes:
            span.set_attributes(span_attributes)
    except Exception:
        logger.exception("otel_bridge: record.%s() failed; ignored", what)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@_guarded
def ticket(ticket_id: Any = None, *, subject: Any = None, requester_email: Any = None, requester_name: Any = None,
           channel: Any = None, priority: Any = None, pii: Iterable[str] = (), **fields: Any) -> None:
    """The ticket being handled. requester_* / subject / description / messages are hashed;
    name extra fields in ``pii`` to hash them too. Sets ``flusso.ticket_id`` on the root."""
    payload = _clean(dict(ticket_id=None if ticket_id is None else str(ticket_id), subject=subject,
                          requester_email=requester_email, requester_name=requester_name,
                          channel=channel, priority=priority, **fields))
    pii_names = [str(p) for p in _as_list(pii)]
    if pii_names:
        payload["_pii"] = pii_names
    _emit("ticket", A.EVENT_TICKET, payload)
    if ticket_id is not None:
        try:
            root = current_root.get()
            if root is not None:
                root.set_attribute(A.TICKET_ID, str(ticket_id))
        except Exception:
            logger.exception("otel_bridge: setting the ticket id failed; ignored")


@_guarded
def react_iteration(thought: Any = None, action: Any = None, action_input: Any = None, observation: Any = None, *,
                    duration_ms: float | None = None, **fields: Any) -> None:
    """One ReACT step. ``duration_ms`` defaults to the time since the previous step (or the
    start of the current node)."""
    _emit("react_iteration", A.EVENT_REACT_ITERATION,
          dict(thought=thought, action=action, action_input=action_input, observation=observation,
               duration_ms=duration_ms, **fields))


@_guarded
def retrieval(source: str, query: Any = None, results: Any = (), **fields: Any) -> None:
    """Results of one search; ``source`` is "vision" or "text" (others allowed). Each result
    is a dict such as {"id", "score", "title"}."""
    _emit("retrieval", A.EVENT_RETRIEVAL,
          {**fields, "source": str(source), "query": query, "results": _as_list(results)},
          {A.GEN_AI_DATA_SOURCE_ID: str(source)})


@_guarded
def evidence(items: Any = (), conflicts: Any = (), resolution: Any = None, **fields: Any) -> None:
    """Evidence gathered, conflicts found between sources and how they were resolved."""
    _emit("evidence", A.EVENT_EVIDENCE,
          {**fields, "items": _as_list(items), "conflicts": _as_list(conflicts), "resolution": resolution})


@_guarded
def decision(name: str, choice: Any = None, reasoning: Any = None, confidence: float | None = None, *,
             stage: str | None = None, **fields: Any) -> None:
    """A decision. It lands in ``trace.planning`` when made inside a planner node (or with
    ``stage="planning"``), else in ``trace.output``."""
    _emit("decision", A.EVENT_DECISION,
          _clean(dict(name=name, choice=choice, reasoning=reasoning, confidence=confidence, stage=stage))
          | fields)


@_guarded
def llm_call(model: str | None = None, input_tokens: int = 0, output_tokens: int = 0,
             cost_usd: float = 0.0, **fields: Any) -> None:
    """One LLM request. Also sets gen_ai.request.model / gen_ai.usage.* on the current node's
    span (summed when a node makes several calls)."""
    span = _target_span()
    if span is None:
        _warn_outside("llm_call")
        return
    attrs: dict[str, Any] = {}
    try:
        current = getattr(span, "attributes", None) or {}
        attrs = {
            A.GEN_AI_USAGE_INPUT_TOKENS: int(current.get(A.GEN_AI_USAGE_INPUT_TOKENS, 0)) + int(input_tokens or 0),
            A.GEN_AI_USAGE_OUTPUT_TOKENS: int(current.get(A.GEN_AI_USAGE_OUTPUT_TOKENS, 0)) + int(output_tokens or 0),
        }
        if model:
            attrs[A.GEN_AI_REQUEST_MODEL] = str(model)
    except Exception:
        logger.exception("otel_bridge: llm_call attributes failed; ignored")
    _emit("llm_call", A.EVENT_LLM_CALL,
          dict(model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost_usd, **fields),
          attrs, span)


@_guarded
def metric(name: str, value: Any) -> None:
    """A named number for ``metrics``. Derived names cannot be overridden, except
    overall_confidence and hallucination_risk."""
    _emit("metric", A.EVENT_METRIC, {"name": str(name), "value": value})


@_guarded
def draft(text: str, **fields: Any) -> None:
    """The drafted response (scrubbed and truncated in the log; its length is a metric)."""
    payload = {**fields, "text": text}
    if isinstance(text, str):
        payload["length_chars"] = len(text)  # the true length wins over a length_chars keyword
    else:
        payload.setdefault("length_chars", None)
    _emit("draft", A.EVENT_DRAFT, payload)


@_guarded
def pii(*values: str, kind: str = "name") -> None:
    """Values to redact wherever they occur in this ticket's log (a third party's name in a
    tool result, an account number with no pattern). They become ``[kind:hex]`` tokens; the
    values themselves are never part of the log."""
    kind = "".join(c for c in str(kind).lower() if c.isalpha() or c == "_")[:24] or "text"
    _emit("pii", A.EVENT_PII, {"values": [str(v) for v in values if v is not None], "kind": kind})


@_guarded
def outcome(status: str = "SUCCESS", resolution_status: str | None = None, *,
            overall_confidence: float | None = None, hallucination_risk: float | None = None,
            **fields: Any) -> None:
    """How the ticket ended: status SUCCESS | PARTIAL | FAILED and a resolution status such
    as resolved / escalated / unresolved. An exception escaping @workflow forces FAILED."""
    st: str | None = str(status).upper()
    if st not in ("SUCCESS", "PARTIAL", "FAILED"):
        logger.warning("otel_bridge: record.outcome status %r is not SUCCESS|PARTIAL|FAILED; ignored", status)
        st = None
    _emit("outcome", A.EVENT_OUTCOME,
          _clean(dict(status=st, resolution_status=resolution_status,
                      overall_confidence=overall_confidence, hallucination_risk=hallucination_risk)) | fields)
