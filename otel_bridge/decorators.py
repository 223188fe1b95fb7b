"""``@workflow`` and ``@node``: spans around a ticket and its steps.

Works on plain functions, ``async def``, generators and async generators (their span ends
when the generator is exhausted or closed) and methods. The wrapped function's exceptions
are recorded and re-raised unchanged; telemetry failures are logged, never raised.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Status, StatusCode

from otel_bridge import attributes as A
from otel_bridge import runtime
from otel_bridge.record import BRIDGE_SPAN_KEY, current_root
from otel_bridge.tagging import current_tags

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
_Tokens = tuple[contextvars.Token[Context] | None, contextvars.Token[Any] | None]
_Start = Callable[[str, dict[str, Any], tuple[Any, ...], dict[str, Any]], "_Handle | None"]
_Fn = Callable[..., Any]
_warned_unconfigured = False
_EMPTY_CONTEXT = otel_context.Context()


# The key under which the OTel API keeps the current span, read through the public API once:
# _context_of builds a step's context in one copy instead of two (it runs for every span).
_PROBE = trace.set_span_in_context(trace.INVALID_SPAN, otel_context.Context())
_SPAN_KEY = next(iter(_PROBE)) if len(_PROBE) == 1 else None


def _context_of(span: Span) -> Context:
    """The context to make current around a step: the span is current, and it is the bridge
    span record.* writes to (also under a host span started inside the step)."""
    if _SPAN_KEY is None:  # an API that keeps more than one key per span: the plain way
        return otel_context.set_value(BRIDGE_SPAN_KEY, span, trace.set_span_in_context(span))
    return Context({**otel_context.get_current(), _SPAN_KEY: span, BRIDGE_SPAN_KEY: span})


class _Handle:
    """One live span plus what is needed to make it current around each step. As a context
    manager: the span is current inside the block and ends with it (the block's exception,
    if any, is recorded and propagates)."""

    __slots__ = ("span", "ctx", "is_root", "_tokens")

    def __init__(self, span: Span, ctx: Context, is_root: bool):
        self.span, self.ctx, self.is_root = span, ctx, is_root
        self._tokens: _Tokens = (None, None)

    def attach(self) -> _Tokens:
        try:
            tok = otel_context.attach(self.ctx)
            rtok = current_root.set(self.span) if self.is_root else None
            return tok, rtok
        except Exception:
            logger.exception("otel_bridge: attaching span context failed")
            return None, None

    def detach(self, tokens: _Tokens) -> None:
        tok, rtok = tokens
        try:
            if rtok is not None:
                current_root.reset(rtok)
            if tok is not None:
                otel_context.detach(tok)
        except Exception:
            logger.exception("otel_bridge: detaching span context failed")

    def end(self, exc: BaseException | None) -> None:
        try:
            if exc is not None and not isinstance(exc, GeneratorExit):
                self.span.record_exception(exc)
                self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            self.span.end()
        except Exception:
            logger.exception("otel_bridge: ending span failed")

    # attach/detach/end inlined: these run for every span (docs/benchmarks-bridge.md).
    def __enter__(self) -> None:
        try:
            tok = otel_context.attach(self.ctx)
            self._tokens = (tok, current_root.set(self.span) if self.is_root else None)
        except Exception:
            logger.exception("otel_bridge: attaching span context failed")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        tok, rtok = self._tokens
        try:
            if rtok is not None:
                current_root.reset(rtok)
            if tok is not None:
                otel_context.detach(tok)
        except Exception:
            logger.exception("otel_bridge: detaching span context failed")
        if exc is not None:
            self.end(exc)
            return
        try:
            self.span.end()
        except Exception:
            logger.exception("otel_bridge: ending span failed")


def _warn_unconfigured() -> None:
    global _warned_unconfigured
    if not _warned_unconfigured:
        _warned_unconfigured = True
        logger.warning("otel_bridge: @workflow called before configure(); running without telemetry")


def _ticket_id_from(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    candidates = list(args[:3])
    if "ticket" in kwargs:
        candidates.insert(0, kwargs["ticket"])
    for c in candidates:
        if isinstance(c, Mapping):
            value = c.get("ticket_id", c.get("id"))
        else:
            value = getattr(c, "ticket_id", None)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
    if isinstance(kwargs.get("ticket_id"), (str, int)):
        return str(kwargs["ticket_id"])
    return None


def _start_workflow(name: str, static_attrs: dict[str, Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> _Handle | None:
    state = runtime.STATE
    if state is None:
        _warn_unconfigured()
        return None
    try:
        parent = trace.get_current_span().get_span_context()
        links = [Link(parent)] if parent.is_valid else None
        attrs = static_attrs
        tid = _ticket_id_from(args, kwargs)
        tags = current_tags.get()
        if tid is not None or tags:
            attrs = {**static_attrs, **(tags or {})}
            if tid is not None:
                attrs[A.TICKET_ID] = tid
        # An empty parent context: every ticket is a NEW trace (linked to the caller's span).
        # The span processor registers the ticket in on_start (a parentless workflow span).
        runtime.join_host_provider()  # the host may have set its provider after configure()
        span = state.tracer.start_span(name, context=_EMPTY_CONTEXT, attributes=attrs, links=links)
        return _Handle(span, _context_of(span), True)
    except Exception:
        logger.exception("otel_bridge: starting workflow span %s failed; running without telemetry", name)
        return None


def _start_node(name: str, static_attrs: dict[str, Any], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> _Handle | None:
    if current_root.get() is None:
        return None
    state = runtime.STATE
    if state is None:
        return None
    try:
        span = state.tracer.start_span(name, attributes=static_attrs)
        return _Handle(span, _context_of(span), False)
    except Exception:
        logger.exception("otel_bridge: starting node span %s failed; running without telemetry", name)
        return None


def _wrap(fn: Callable[..., Any], name: str, static_attrs: dict[str, Any], start: _Start) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        return _wrap_async_generator(fn, name, static_attrs, start)
    if inspect.isgeneratorfunction(fn):
        return _wrap_generator(fn, name, static_attrs, start)
    if inspect.iscoroutinefunction(fn):
        return _wrap_coroutine(fn, name, static_attrs, start)
    return _wrap_function(fn, name, static_attrs, start)


def _wrap_function(fn: _Fn, name: str, static_attrs: dict[str, Any], start: _Start) -> _Fn:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        h = start(name, static_attrs, args, kwargs)
        if h is None:
            return fn(*args, **kwargs)
        with h:
            return fn(*args, **kwargs)
    return wrapper


def _wrap_coroutine(fn: _Fn, name: str, static_attrs: dict[str, Any], start: _Start) -> _Fn:
    @functools.wraps(fn)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        h = start(name, static_attrs, args, kwargs)
        if h is None:
            return await fn(*args, **kwargs)
        with h:
            return await fn(*args, **kwargs)
    return async_wrapper


def _wrap_generator(fn: _Fn, name: str, static_attrs: dict[str, Any], start: _Start) -> _Fn:
    """The span is current only while the generator runs (each step), not between steps."""
    @functools.wraps(fn)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
        h = start(name, static_attrs, args, kwargs)
        gen = fn(*args, **kwargs)
        if h is None:
            return (yield from gen)
        send_value, throw_exc = None, None
        try:
            while True:
                tokens = h.attach()
                try:
                    if throw_exc is not None:
                        exc, throw_exc = throw_exc, None
                        item = gen.throw(exc)
                    else:
                        item = gen.send(send_value)
                finally:
                    h.detach(tokens)
                try:
                    send_value = yield item
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as e:  # thrown in by the consumer: forward it
                    throw_exc = e
        except StopIteration as stop:
            h.end(None)
            return stop.value
        except BaseException as e:
            h.end(e)
            raise
    return gen_wrapper


def _wrap_async_generator(fn: Callable[..., Any], name: str, static_attrs: dict[str, Any],
                          start: _Start) -> Callable[..., Any]:
    """As _wrap_generator, for ``async def`` generators."""
    @functools.wraps(fn)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
        h = start(name, static_attrs, args, kwargs)
        agen = fn(*args, **kwargs)
        if h is None:
            async for item in agen:
                yield item
            return
        send_value, throw_exc = None, None
        try:
            while True:
                tokens = h.attach()
                try:
                    if throw_exc is not None:
                        exc, throw_exc = throw_exc, None
                        item = await agen.athrow(exc)
                    else:
                        item = await agen.asend(send_value)
                finally:
                    h.detach(tokens)
                try:
                    send_value = yield item
                except GeneratorExit:
                    await agen.aclose()
                    raise
                except BaseException as e:  # thrown in by the consumer: forward it
                    throw_exc = e
        except StopAsyncIteration:
            h.end(None)
        except BaseException as e:
            h.end(e)
            raise
    return agen_wrapper


@overload
def workflow(name: F) -> F: ...
@overload
def workflow(name: str | None = None) -> Callable[[F], F]: ...
def workflow(name: str | Callable[..., Any] | None = None) -> Any:
    """Decorate the function that handles one ticket. Each call starts a NEW trace (a root
    span linked to the caller's span, if any) and, when it returns or raises, yields exactly
    one workflow log. The ticket id is taken from record.ticket(), else from a ``ticket_id``
    (or ``id``) key/attribute of the first arguments or a ``ticket`` keyword argument."""
    if callable(name):
        return workflow(None)(name)

    def decorate(fn: F) -> F:
        wf_name = name or fn.__name__
        attrs: dict[str, Any] = {
            A.KIND: A.KIND_WORKFLOW,
            A.WORKFLOW_NAME: wf_name,
            A.GEN_AI_OPERATION_NAME: A.OPERATION_BY_KIND["workflow"],
            A.GEN_AI_AGENT_NAME: wf_name,
        }
        return _wrap(fn, wf_name, attrs, _start_workflow)  # type: ignore[return-value]
    return decorate


@overload
def node(name: F, *, kind: str = "chain") -> F: ...
@overload
def node(name: str | None = None, *, kind: str = "chain") -> Callable[[F], F]: ...
def node(name: str | Callable[..., Any] | None = None, *, kind: str = "chain") -> Any:
    """Decorate one step of the workflow. ``kind`` is planner, agent, tool, retriever, llm,
    chain, ... (free text; tool/agent/retriever/llm map to gen_ai.operation.name). Outside a
    @workflow the function runs without a span."""
    if callable(name):
        return node(None, kind=kind)(name)

    def decorate(fn: F) -> F:
        node_name = name or fn.__name__
        attrs: dict[str, Any] = {A.KIND: str(kind), A.NODE_NAME: node_name}
        op = A.OPERATION_BY_KIND.get(kind)
        if op:
            attrs[A.GEN_AI_OPERATION_NAME] = op
        if kind == "tool":
            attrs[A.GEN_AI_TOOL_NAME] = node_name
        elif kind == "agent":
            attrs[A.GEN_AI_AGENT_NAME] = node_name
        return _wrap(fn, node_name, attrs, _start_node)  # type: ignore[return-value]
    return decorate
