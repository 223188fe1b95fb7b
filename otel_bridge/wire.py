"""One export attempt and what its answer means for delivery (docs/client.md, "Delivery").

The OTLP exporter of the OTel SDK retries inside its own ~10 s window, then drops the batch,
and never reads ``partial_success``. ``FlussoLogExporter`` is that real exporter (its encoder,
compression, headers, TLS settings and HTTP session) with one more method, ``send_once``: a
single POST whose status, headers and body come back to the caller. ``classify`` turns that
answer into an ``Outcome``: delivered (with the collector's partial-success rejections),
retry later (connection errors, timeouts, 408, 429, 5xx; ``Retry-After`` honoured), split
(413) or rejected for good (any other 4xx, a redirect, with the collector's message).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

logger = logging.getLogger(__name__)

DELIVERED, RETRY, SPLIT, REJECTED = "delivered", "retry", "split", "rejected"
_RETRY_AFTER_CAP_S = 300.0


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # DELIVERED, RETRY, SPLIT or REJECTED
    rejected: int = 0  # DELIVERED: records the collector refused (partial success)
    reason: str = ""  # REJECTED / partial success / RETRY: a short key, e.g. "http_400"
    message: str = ""  # the collector's own words, for the warning
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What one POST returned: a status with headers and body, or an error before any answer."""

    status: int | None
    headers: Mapping[str, str]
    content: bytes
    error: BaseException | None = None


class OneShotExporter(Protocol):
    """What delivery needs of an exporter: one attempt, answered in HTTP terms (this module's
    ``FlussoLogExporter`` for OTLP/HTTP, ``otel_bridge.grpc_wire.GrpcLogWire`` for OTLP/gRPC)."""

    def send_once(self, serialized: bytes, timeout_seconds: float) -> Answer: ...

    def shutdown(self) -> None: ...

    def reset_after_fork(self) -> None: ...


class FlussoLogExporter(OTLPLogExporter):
    """The OTel OTLP/HTTP log exporter, plus ``send_once`` (no retry loop of its own: delivery
    retries beyond the exporter's window) and a fresh connection pool after fork()."""

    def send_once(self, serialized: bytes, timeout_seconds: float) -> Answer:
        client = self._client
        result = client._submit(client._compress(serialized), max(0.05, timeout_seconds))
        if result.status_code is None:
            return Answer(None, {}, b"", result.error or ConnectionError("no answer"))
        try:
            headers = {k.lower(): v for k, v in result.headers().items()}
            content = result.content() or b""
        except Exception as exc:  # a broken answer: treat as no answer
            return Answer(None, {}, b"", exc)
        return Answer(result.status_code, headers, content)

    def reset_after_fork(self) -> None:
        """A fork child must not reuse the parent's pooled sockets (both would write to them)."""
        session = getattr(getattr(self._client, "_transport", None), "_session", None)
        if session is not None:
            from requests.adapters import HTTPAdapter

            session.adapters.clear()
            session.mount("https://", HTTPAdapter())
            session.mount("http://", HTTPAdapter())


def classify(answer: Answer) -> Outcome:
    status = answer.status
    if status is None:
        return Outcome(RETRY, reason="connection", message=_short(repr(answer.error)))
    if 200 <= status < 300:
        return _delivered(answer)
    if status == 413:
        return Outcome(SPLIT, reason="http_413", message=_status_message(answer))
    if status in (408, 429) or 500 <= status < 600 or status < 200:
        return Outcome(RETRY, reason=f"http_{status}", message=_status_message(answer),
                       retry_after_s=retry_after(answer.headers))
    return Outcome(REJECTED, reason=f"http_{status}", message=_status_message(answer))


def _delivered(answer: Answer) -> Outcome:
    if not answer.content:
        return Outcome(DELIVERED)
    response = ExportLogsServiceResponse()
    try:
        if "json" in answer.headers.get("content-type", ""):
            from google.protobuf import json_format  # type: ignore[import-untyped]

            json_format.Parse(answer.content.decode("utf-8"), response, ignore_unknown_fields=True)
        else:
            response.ParseFromString(answer.content)
    except Exception:
        logger.debug("otel_bridge: unreadable 2xx answer body (%d bytes); counted as delivered", len(answer.content))
        return Outcome(DELIVERED)
    rejected = int(response.partial_success.rejected_log_records)
    if rejected <= 0:
        return Outcome(DELIVERED)
    return Outcome(DELIVERED, rejected=rejected, reason="partial_success",
                   message=_short(response.partial_success.error_message))


def _status_message(answer: Answer) -> str:
    """The google.rpc.Status message of an OTLP error answer, else the start of the body."""
    content = answer.content
    if not content:
        return ""
    if "protobuf" in answer.headers.get("content-type", ""):
        try:
            from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]

            status = Status()
            status.ParseFromString(content)
            if status.message:
                return _short(status.message)
        except Exception:
            pass
    return _short(content.decode("utf-8", "replace"))


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Retry-After in seconds (delta or HTTP date), capped; None when absent or unreadable."""
    value = str(headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP_S)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
