"""``@workflow`` and ``@node``: spans around a ticket and its steps.

Works on plain functions, ``async def``, generators and async generators (their span ends
when the generator is exhausted or closed) and methods. The wrapped function's exceptions
are recorded and re-raised unchanged; telemetry failures are logged, never raised.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode

from otel_bridge import attributes as A
from otel_bridge import runtime
from otel_bridge.record import current_root

logger = logging.getLogger(__name__)
_warned_unconfigured = False
_EMPTY_CONTEXT = otel_context.Context()


class _Handle:
    """One live span plus what is needed to make it current around each step."""

    __slots__ = ("span", "ctx", "is_root")

    def __init__(self, span, ctx, is_root: bool):
        self.span, self.ctx, self.is_root = span, ctx, is_root

    def attach(self):
        try:
            tok = otel_context.attach(self.ctx)
            rtok = current_root.set(self.span) if self.is_root else None
            return tok, rtok
        except Exception:
            logger.exception("otel_bridge: attaching span context failed")
            return None, None

    def detach(self, tokens) -> None:
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


def _warn_unconfigured() -> None:
    global _warned_unconfigured
    if not _warned_unconfigured:
        _warned_unconfigured = True
        logger.warning("otel_bridge: @workflow called before configure(); running without telemetry")


def _ticket_id_from(args, kwargs):
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


def _start_workflow(name: str, static_attrs: dict, args, kwargs):
    state = runtime.STATE
    if state is None:
        _warn_unconfigured()
        return None
    try:
        parent = trace.get_current_span().get_span_context()
        links = [Link(parent)] if parent.is_valid else None
        attrs = static_attrs
        tid = _ticket_id_from(args, kwargs)
        if tid is not None:
            attrs = dict(static_attrs)
            attrs[A.TICKET_ID] = tid
        # An empty parent context: every ticket is a NEW trace (linked to the caller's span).
        span = state.tracer.start_span(name, context=_EMPTY_CONTEXT, attributes=attrs, links=links)
        state.worker.open_trace(span.get_span_context().trace_id)
        return _Handle(span, trace.set_span_in_context(span), True)
    except Exception:
        logger.exception("otel_bridge: starting workflow span %s failed; running without telemetry", name)
        return None


def _start_node(name: str, static_attrs: dict, args, kwargs):
    if current_root.get() is None:
        return None
    state = runtime.STATE
    if state is None:
        return None
    try:
        span = state.tracer.start_span(name, attributes=static_attrs)
        return _Handle(span, trace.set_span_in_context(span), False)
    except Exception:
        logger.exception("otel_bridge: starting node span %s failed; running without telemetry", name)
        return None


def _wrap(fn, name: str, static_attrs: dict, start):
    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def agen_wrapper(*args, **kwargs):
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

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
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
                    except BaseException as e:
                        throw_exc = e
            except StopIteration as stop:
                h.end(None)
                return stop.value
            except BaseException as e:
                h.end(e)
                raise
        return gen_wrapper

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args, **kwargs):
            h = start(name, static_attrs, args, kwargs)
            if h is None:
                return await fn(*args, **kwargs)
            tokens = h.attach()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as e:
                h.detach(tokens)
                h.end(e)
                raise
            h.detach(tokens)
            h.end(None)
            return result
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        h = start(name, static_attrs, args, kwargs)
        if h is None:
            return fn(*args, **kwargs)
        tokens = h.attach()
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            h.detach(tokens)
            h.end(e)
            raise
        h.detach(tokens)
        h.end(None)
        return result
    return wrapper


def workflow(name=None):
    """Decorate the function that handles one ticket. Each call starts a NEW trace (a root
    span linked to the caller's span, if any) and, when it returns or raises, yields exactly
    one workflow log. The ticket id is taken from record.ticket(), else from a ``ticket_id``
    (or ``id``) key/attribute of the first arguments or a ``ticket`` keyword argument."""
    if callable(name):
        return workflow(None)(name)

    def decorate(fn):
        wf_name = name or fn.__name__
        attrs = {
            A.KIND: A.KIND_WORKFLOW,
            A.WORKFLOW_NAME: wf_name,
            A.GEN_AI_OPERATION_NAME: A.OPERATION_BY_KIND["workflow"],
            A.GEN_AI_AGENT_NAME: wf_name,
        }
        return _wrap(fn, wf_name, attrs, _start_workflow)
    return decorate


def node(name=None, *, kind: str = "chain"):
    """Decorate one step of the workflow. ``kind`` is planner, agent, tool, retriever, llm,
    chain, ... (free text; tool/agent/retriever/llm map to gen_ai.operation.name). Outside a
    @workflow the function runs without a span."""
    if callable(name):
        return node(None, kind=kind)(name)

    def decorate(fn):
        node_name = name or fn.__name__
        attrs = {A.KIND: str(kind), A.NODE_NAME: node_name}
        op = A.OPERATION_BY_KIND.get(kind)
        if op:
            attrs[A.GEN_AI_OPERATION_NAME] = op
        if kind == "tool":
            attrs[A.GEN_AI_TOOL_NAME] = node_name
        elif kind == "agent":
            attrs[A.GEN_AI_AGENT_NAME] = node_name
        return _wrap(fn, node_name, attrs, _start_node)
    return decorate
