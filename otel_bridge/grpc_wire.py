"""One export attempt over OTLP/gRPC (``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``), answered like an HTTP one.

``GrpcLogWire`` has the methods ``OtlpTransport`` uses of ``FlussoLogExporter`` (``send_once``,
``shutdown``, ``reset_after_fork``): one unary ``LogsService/Export`` call of the already
serialized request (gzip), no retry loop of its own. Its answer is given in HTTP terms, so
``wire.classify`` and everything after it (retries, Retry-After, split, spool) stay one code path:

    OK -> 200 (+ the response: partial success)     RESOURCE_EXHAUSTED + RetryInfo -> 429
    UNAVAILABLE + RetryInfo -> 503                  RESOURCE_EXHAUSTED without -> 413 (split)
    UNAVAILABLE without (no server, reset) -> no answer (a connection error: retried)
    DEADLINE_EXCEEDED -> 408   UNAUTHENTICATED -> 401   PERMISSION_DENIED -> 403
    INVALID_ARGUMENT, FAILED_PRECONDITION, ... -> 400   anything else -> 503 (retried)

The retry delay comes from the google.rpc.RetryInfo of the status details (or the
``google.rpc.retryinfo-bin`` trailer). Needs ``grpcio`` (the ``grpc`` extra of flusso-obs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from otel_bridge.wire import Answer

logger = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
_HTTP_OF_CODE = {"OK": 200, "DEADLINE_EXCEEDED": 408, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
                 "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404, "ALREADY_EXISTS": 409,
                 "UNIMPLEMENTED": 501}


def grpc_target(url: str) -> tuple[str, bool]:
    """(host:port, TLS?) of an OTLP/gRPC endpoint URL: ``http://`` plaintext, ``https://`` (or no
    scheme) TLS, as the OTel SDK reads it; a path (e.g. /v1/logs) is ignored."""
    parts = urlsplit(url.strip() if "://" in url else "https://" + url.strip())
    port = parts.port or 4317
    host = parts.hostname or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}", parts.scheme != "http"


class GrpcLogWire:
    """The gRPC counterpart of ``wire.FlussoLogExporter`` for ``OtlpTransport``."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_seconds: float) -> None:
        self.target, self.secure = grpc_target(endpoint)
        self.metadata = tuple((k.lower(), v) for k, v in headers.items())
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._channel: Any = None
        self._call: Any = None

    def _export_call(self) -> Any:
        import grpc

        with self._lock:
            if self._call is None:
                options = [("grpc.max_send_message_length", -1)]
                self._channel = (grpc.secure_channel(self.target, grpc.ssl_channel_credentials(), options=options,
                                                     compression=grpc.Compression.Gzip) if self.secure else
                                 grpc.insecure_channel(self.target, options=options,
                                                       compression=grpc.Compression.Gzip))
                self._call = self._channel.unary_unary(EXPORT_METHOD, request_serializer=None,
                                                       response_deserializer=None)
            return self._call

    def send_once(self, serialized: bytes, timeout_seconds: float) -> Answer:
        import grpc

        try:
            response = self._export_call()(serialized, metadata=self.metadata, timeout=max(0.05, timeout_seconds))
        except grpc.RpcError as error:
            return answer_of(error)
        except Exception as exc:  # a broken channel: no answer, retried
            return Answer(None, {}, b"", exc)
        return Answer(200, {"content-type": "application/x-protobuf"}, response or b"")

    def shutdown(self) -> None:
        with self._lock:
            channel, self._channel, self._call = self._channel, None, None
        if channel is not None:
            channel.close()

    def reset_after_fork(self) -> None:
        """A fork child opens its own channel (gRPC's threads and sockets are the parent's)."""
        with self._lock:
            self._channel, self._call = None, None


def retry_delay_s(trailers: Mapping[str, Any]) -> float | None:
    """The RetryInfo delay of a failed call: from the google.rpc.Status details, else the
    ``google.rpc.retryinfo-bin`` trailer; None without one."""
    from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

    info = error_details_pb2.RetryInfo()
    details = trailers.get("grpc-status-details-bin")
    try:
        if details:
            for detail in status_pb2.Status.FromString(details).details:
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
        own = trailers.get("google.rpc.retryinfo-bin")
        if own:
            info.ParseFromString(own)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    except Exception:  # unreadable details: as if absent
        logger.debug("otel_bridge: unreadable gRPC status details", exc_info=True)
    return None


def answer_of(error: Any) -> Answer:
    """A failed call as the HTTP answer `wire.classify` understands (see the module's table)."""
    from google.rpc import status_pb2

    code = error.code().name if error.code() is not None else "UNKNOWN"
    trailers = dict(error.trailing_metadata() or ())
    delay = retry_delay_s(trailers)
    message = error.details() or code
    if code == "UNAVAILABLE" and delay is None:
        return Answer(None, {}, b"", ConnectionError(f"gRPC UNAVAILABLE: {message}"))
    if code == "RESOURCE_EXHAUSTED":
        status = 429 if delay is not None else 413
    else:
        status = _HTTP_OF_CODE.get(code, 503)
    headers = {"content-type": "application/x-protobuf"}
    if delay is not None:
        headers["retry-after"] = f"{delay:g}"
    body = status_pb2.Status(code=error.code().value[0] if error.code() else 2, message=message).SerializeToString()
    return Answer(status, headers, body)
