"""The edge's gRPC adapter: OTLP/gRPC `Export` of every OTLP receiver, through the same pipeline.

Each receiver whose signal names a gRPC service (`OtlpSignal.grpc_service`) is served as
`/<service>/Export` by ONE handler factory, `_export_behavior`, which builds a `GrpcCall` and runs
`pipeline.run_export` with the receiver object the HTTP app mounted: a gRPC method cannot skip a
rule the HTTP route applies. `grpc_methods` is the table the server is built from, and what
tests/collector/test_hostile_routes.py enumerates.

The method is registered stream-unary with raw bytes in and out (the wire is the same as unary's):
the handler runs as soon as the call's metadata arrives, so the key is checked and the call
admitted BEFORE the message is read, as HTTP checks the key before the body; the message is then
read within FLUSSO_BODY_TIMEOUT_SECONDS and inflated and parsed by the pipeline in its decode
slot, exactly like an HTTP body: gRPC core is told not to decompress (`grpc-encoding` gzip or
deflate messages arrive as sent), caps the message on the wire at FLUSSO_MAX_BODY_BYTES, and the
edge's `inflate` caps it after decompression (both RESOURCE_EXHAUSTED). Errors become the
status of the CollectorError (collector_api.http.errors) with a google.rpc.Status in
`grpc-status-details-bin`, carrying a google.rpc.RetryInfo when the sender should retry later
(shedding load, draining, database down); the RetryInfo also goes in `google.rpc.retryinfo-bin`,
the trailer the Python OTLP exporter reads.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from collector_api.http.admission import CollectorState
from collector_api.http.drain import Drain
from collector_api.http.errors import CollectorError, PayloadTooLarge, RequestTimeout
from collector_api.http.otlp import PROTOBUF
from collector_api.http.pipeline import Receiver, run_export

logger = logging.getLogger(__name__)
EXPORT = "Export"


def grpc_methods(receivers: Iterable[Receiver]) -> dict[str, Receiver]:
    """Full method name (`/<service>/Export`) -> receiver, for every receiver with a gRPC service."""
    return {f"/{r.signal.grpc_service}/{EXPORT}": r for r in receivers if r.signal is not None
            and r.signal.grpc_service}


class GrpcCall:
    """A gRPC call as the pipeline's `Call`: metadata (text keys only), protobuf, one message."""

    media_type = PROTOBUF

    def __init__(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext, endpoint: str):
        self.requests, self.context, self.endpoint = requests, context, endpoint
        self.metadata = {k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)}

    async def read_body(self, limit: int, timeout_s: float) -> tuple[bytes, str]:
        """The one export request message as sent (gRPC core does not inflate it: see
        `message_encoding`), and its compression."""
        messages: list[bytes] = []
        try:
            async with asyncio.timeout(timeout_s):
                async for message in self.requests:
                    messages.append(message)
                    if len(messages) > 1:
                        raise CollectorError("send one export request message per call (unary Export)")
        except TimeoutError:
            raise RequestTimeout(f"the request message did not arrive within {timeout_s:g} s") from None
        if not messages:  # gRPC core already ended the call (message over the cap) or the client sent none
            raise CollectorError("the call carried no export request message (or one over the size limit)")
        if len(messages[0]) > limit:  # gRPC core enforces it; kept so the rule does not depend on an option
            raise PayloadTooLarge(f"message exceeds the limit of {limit} bytes")
        return messages[0], message_encoding(messages[0])


def message_encoding(message: bytes) -> str:
    """How a message arrived: "gzip", "deflate" (zlib) or "identity". Decided from its first bytes,
    which cannot be confused for gzip (0x1f is wire type 7, which no protobuf message starts with);
    a zlib header (0x78..) reads as protobuf field 15, which no OTLP export request has."""
    if message[:2] == b"\x1f\x8b":
        return "gzip"
    zlib_header = len(message) >= 2 and message[0] & 0x0F == 8 and message[0] >> 4 <= 7
    if zlib_header and (message[0] << 8 | message[1]) % 31 == 0:
        return "deflate"
    return "identity"


def error_trailers(exc: CollectorError) -> tuple[tuple[str, bytes], ...]:
    """google.rpc.Status (+ RetryInfo when the sender should come back later) as trailing metadata."""
    status = status_pb2.Status(code=exc.grpc_code, message=exc.message)
    trailers = []
    if exc.retry_after:
        retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(exc.retry_after)))
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
        trailers.append(("google.rpc.retryinfo-bin", retry.SerializeToString()))
    return (("grpc-status-details-bin", status.SerializeToString()), *trailers)


def _export_behavior(receiver: Receiver, state: CollectorState, drain: Drain, endpoint: str):
    signal = receiver.signal
    assert signal is not None

    async def export(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        started, status = time.perf_counter(), 200
        drain.rpcs_in_flight += 1
        try:
            outcome = await run_export(receiver, GrpcCall(requests, context, endpoint), state, drain)
            return signal.response_message(outcome).SerializeToString()
        except CollectorError as exc:
            status, failure = exc.status, exc
        except Exception:  # a bug of ours, never the sender's input: logged with a reference
            ref = uuid.uuid4().hex[:12]
            logger.exception("gRPC %s: unexpected error (ref %s)", endpoint, ref)
            status, failure = 500, None
        finally:
            drain.rpcs_in_flight -= 1
            state.metrics.latency.labels(endpoint, str(status)).observe(time.perf_counter() - started)
        if failure is None:
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (ref {ref}); the collector's log has it")
        if failure.status >= 500:
            logger.warning("gRPC %s -> %s: %s", endpoint, failure.status, failure.message)
        await context.abort(STATUS_CODES[failure.grpc_code], failure.message, trailing_metadata=error_trailers(failure))
        return b""  # not reached: abort raises

    export.__name__ = f"grpc_export_{receiver.name}"
    return export


STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class GrpcOptions:
    host: str
    port: int  # 0: any free port (tests); the bound one is GrpcEdge.port
    max_message_bytes: int
    tls_cert: Path | None = None
    tls_key: Path | None = None
    reuse_port: bool = False  # True only for `serve --workers N`: each worker binds the same port


@dataclass
class GrpcEdge:
    server: grpc.aio.Server
    methods: dict[str, Receiver]
    port: int

    async def stop(self, grace_s: float) -> None:
        """Stop accepting calls at once; calls in progress get `grace_s` to finish (and commit)."""
        await self.server.stop(grace_s)


def _handlers(methods: dict[str, Receiver], state: CollectorState, drain: Drain) -> list:
    by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
    for name, receiver in methods.items():
        service = name.split("/")[1]
        behavior = _export_behavior(receiver, state, drain, f"{receiver.name}_grpc")
        by_service.setdefault(service, {})[EXPORT] = grpc.stream_unary_rpc_method_handler(behavior)
    return [grpc.method_handlers_generic_handler(service, table) for service, table in by_service.items()]


async def start_grpc_edge(receivers: Iterable[Receiver], state: CollectorState, drain: Drain,
                          options: GrpcOptions) -> GrpcEdge:
    """A started gRPC server in the running event loop serving `receivers` through the pipeline;
    raises RuntimeError when the address cannot be bound."""
    methods = grpc_methods(receivers)
    server = grpc.aio.server(options=[
        # Messages are inflated by the edge, like HTTP bodies: in the decode slot, with ISA-L, capped
        # at the same limit after inflating; gRPC core caps what arrives on the wire.
        ("grpc.per_message_decompression", 0),
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.so_reuseport", 1 if options.reuse_port else 0),
    ])
    server.add_generic_rpc_handlers(_handlers(methods, state, drain))
    address = f"[{options.host}]:{options.port}" if ":" in options.host else f"{options.host}:{options.port}"
    try:
        if options.tls_cert and options.tls_key:
            credentials = grpc.ssl_server_credentials([(options.tls_key.read_bytes(), options.tls_cert.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot listen for gRPC on {address}: {exc}") from None
    await server.start()
    logger.info("OTLP/gRPC on %s:%d (%s)%s", options.host, port, ", ".join(methods),
                " with TLS" if options.tls_cert else "")
    return GrpcEdge(server, methods, port)
