"""A hostile client on every route that takes a body, found from the app itself.

ROUTES names every route of the app that accepts a body, with its kind. A route added without
an entry fails `test_every_body_route_has_an_entry`, so nothing new escapes this suite. Every
`ingest` route (each receiver the edge mounts) gets the whole battery with a valid key of the
scope it asks for: 1,000-deep JSON -> 400, oversized body -> 413, gzip bomb -> 413, stalled body
-> 408 within the timeout, wrong content type -> 415, no/bad/wrong-scope key -> 401, never a 5xx.
Every other body route (forms, the review API) gets the body caps and timeout of the body guard
and hostile values, never a 5xx.

GRPC_METHODS does the same for the OTLP/gRPC port: every method the gRPC server registers needs
an entry, and each gets its battery over the wire: 1,000-deep protobuf and garbage ->
INVALID_ARGUMENT, oversized message and gzip bomb -> RESOURCE_EXHAUSTED, no/bad key ->
UNAUTHENTICATED, wrong scope -> PERMISSION_DENIED, a stalled message -> DEADLINE_EXCEEDED within the
timeout, two messages in one call -> INVALID_ARGUMENT; never UNKNOWN or INTERNAL.
"""
from __future__ import annotations

import gzip
import socket
import time

import httpx
import pytest

from collector_api.http.edge import all_routes, receiver_of
from collector_api.http.grpc_edge import grpc_methods
from collector_api.http.otlp import JSON, PROTOBUF
from collector_api.store.accounts.principals import create_api_key
from collector_api.store.core.db import create_pool
from config.server import ServerSettings
from tests.grpc.helpers import GrpcLiveServer
from tests.helpers import run_async

LIMIT = 64 * 1024  # FLUSSO_MAX_BODY_BYTES of the server under attack
TIMEOUT_S = 1.5  # FLUSSO_BODY_TIMEOUT_SECONDS of the server under attack
FORM_LIMIT = ServerSettings(_env_file=None).flusso_max_form_bytes  # every other body route's cap
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# (method, path) -> kind: "ingest" (an edge receiver), "form" (a viewer form, session + CSRF),
# "api" (a JSON API route with its own key scope), "erase" (the erasure API: an erase key, its own body cap).
ROUTES = {
    ("POST", "/v1/logs"): "ingest",
    ("POST", "/api/v1/logs"): "ingest",
    ("POST", "/v1/traces"): "ingest",
    ("POST", "/login"): "form",
    ("POST", "/logout"): "form",
    ("POST", "/tickets/{log_id}/reviews"): "form",
    ("POST", "/alerts"): "form",
    ("POST", "/alerts/{rule_id}/delete"): "form",
    ("POST", "/evaluators"): "form",
    ("POST", "/evaluators/{name}/{action}"): "form",
    ("POST", "/api/v1/tickets/{log_id}/reviews"): "api",
    ("POST", "/api/v1/erasures"): "erase",
    ("POST", "/datasets"): "form",
    ("POST", "/api/v1/datasets"): "api",
}
ERASURE_LIMIT = 128 * 1024  # FLUSSO_MAX_ERASURE_BYTES of the server under attack (its own cap)

# Full gRPC method name -> the HTTP path of the receiver it shares (the same Receiver object).
GRPC_METHODS = {
    "/opentelemetry.proto.collector.logs.v1.LogsService/Export": "/v1/logs",
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export": "/v1/traces",
}


def _app():
    from flusso_obs.server import create_app

    return create_app(ServerSettings(_env_file=None, flusso_session_secret="r" * 40), "postgresql://unused@/x")


APP_ROUTES = all_routes(_app().routes)
RECEIVERS = [r for r in map(receiver_of, APP_ROUTES) if r is not None]


def test_every_body_route_has_an_entry():
    found = {(method, route.path) for route in APP_ROUTES for method in getattr(route, "methods", None) or ()
             if method in BODY_METHODS}
    assert found - ROUTES.keys() == set(), "add these routes to ROUTES (and so to the hostile suite)"
    assert ROUTES.keys() - found == set(), "these routes are gone: remove them from ROUTES"


def test_ingest_entries_are_exactly_the_edges_receivers():
    assert {path for (_, path), kind in ROUTES.items() if kind == "ingest"} == {r.path for r in RECEIVERS}


def test_an_unlisted_route_fails_the_enumeration():
    """The enumeration is not vacuous: a route added to the app is seen."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/new-signal")
    async def new_signal() -> None:
        return None

    found = {(m, r.path) for r in all_routes(app.routes) for m in getattr(r, "methods", None) or ()}
    assert ("POST", "/v1/new-signal") in found - ROUTES.keys()


@pytest.fixture(scope="module")
def hostile_server(module_db_dsn):
    """A live server with small caps and a short body timeout, a key of every scope of tenant acme."""
    dsn = module_db_dsn

    async def keys():
        async with create_pool(dsn) as pool:
            return {scope: (await create_api_key(pool, "acme", scope)).secret
                    for scope in ("ingest", "read", "review", "erase")}

    settings = ServerSettings(_env_file=None, flusso_session_secret="h" * 40, flusso_max_body_bytes=LIMIT,
                              flusso_body_timeout_seconds=TIMEOUT_S, flusso_pii_hash_key="hostile-" + "k" * 40,
                              flusso_tenant_rate_limit_per_s=0, flusso_login_attempts_per_minute=10_000,
                              flusso_max_erasure_bytes=ERASURE_LIMIT, flusso_receipt_key="hostile-receipt-" + "k" * 40)
    server = GrpcLiveServer(dsn, settings).start()  # HTTP and the OTLP/gRPC port
    try:
        yield server, run_async(keys())
    finally:
        server.stop()


def _json_type(receiver) -> str:
    return JSON if JSON in receiver.media_types else receiver.media_types[0]


def _post(server, path, body: bytes, key: str | None, ctype: str = JSON, **headers) -> httpx.Response:
    h = {"Content-Type": ctype, **headers}
    if key is not None:
        h["X-API-Key"] = key
    return httpx.post(server.url + path, content=body, headers=h, timeout=30)


def _deep_json(levels: int) -> bytes:
    return ('{"a":' * levels + "1" + "}" * levels).encode()


def _stalled_status(port: int, path: str, key: str, ctype: str) -> tuple[int, float]:
    """Headers and a tenth of the announced body, then silence: (status, seconds until answered)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S + 10)
    try:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: 1000\r\n\r\n").encode() + b"{" * 100)
        started = time.monotonic()
        head = sock.recv(200).decode("latin-1")
        return int(head.split(" ", 2)[1]), time.monotonic() - started
    finally:
        sock.close()


@pytest.mark.parametrize("receiver", RECEIVERS, ids=lambda r: r.path)
def test_hostile_bodies_on_every_ingest_route(hostile_server, receiver):
    server, keys = hostile_server
    key, ctype, path = keys[receiver.scope], _json_type(receiver), receiver.path
    cases = {
        "1,000-deep JSON": (_post(server, path, _deep_json(1000), key, ctype), 400),
        "5,000-deep JSON": (_post(server, path, b"[" * 5000 + b"]" * 5000, key, ctype), 400),
        "oversized body": (_post(server, path, b"{" + b" " * LIMIT + b"}", key, ctype), 413),
        "gzip bomb": (_post(server, path, gzip.compress(b" " * (32 * LIMIT)), key, ctype,
                            **{"Content-Encoding": "gzip"}), 413),
        "unknown encoding": (_post(server, path, b"{}", key, ctype, **{"Content-Encoding": "br"}), 415),
        "wrong content type": (_post(server, path, b"{}", key, "text/plain"), 415),
        "no key": (_post(server, path, b"{}", None, ctype), 401),
        "bad key": (_post(server, path, b"{}", "fo_not-a-key", ctype), 401),
        "wrong-scope key": (_post(server, path, b"{}", keys["read"], ctype), 401),
        "not JSON": (_post(server, path, b"\xff\xfe garbage", key, ctype), 400),
    }
    if PROTOBUF in receiver.media_types:
        cases["not protobuf"] = (_post(server, path, b"\xff" * 64, key, PROTOBUF), 400)
    wrong = {name: (r.status_code, r.text[:200]) for name, (r, expected) in cases.items()
             if r.status_code != expected}
    assert not wrong, f"{path}: {wrong}"
    assert "nested deeper" in cases["1,000-deep JSON"][0].text
    status, waited = _stalled_status(server.port, path, key, ctype)
    assert status == 408 and waited < TIMEOUT_S + 5, (status, waited)


def test_deep_json_inside_a_span_attribute_is_no_5xx(hostile_server):
    """OpenInference `metadata` and `output.value` holding 1,000-deep JSON text, over JSON and protobuf:
    the span is staged (the text is only text), never a 500."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server, keys = hostile_server
    deep = "[" * 1000 + "]" * 1000
    now = time.time_ns()
    request = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "agent", "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
        "attributes": [{"key": "metadata", "value": {"stringValue": "{\"customer_name\": " + deep + "}"}},
                       {"key": "output.value", "value": {"stringValue": deep}},
                       {"key": "gen_ai.output.messages", "value": {"stringValue": deep}},
                       {"key": "llm.input_messages", "value": {"stringValue": deep}}]}]}]}]}
    import json

    as_json = _post(server, "/v1/traces", json.dumps(request).encode(), keys["ingest"])
    message = json_format.ParseDict(json.loads(json.dumps(request).replace("ab" * 16, "q6urq6urq6urq6urq6urqw==")
                                               .replace("cd" * 8, "zc3Nzc3Nzc0=")), ExportTraceServiceRequest())
    as_protobuf = _post(server, "/v1/traces", message.SerializeToString(), keys["ingest"], PROTOBUF)
    assert as_json.status_code == 200, as_json.text[:300]
    assert as_protobuf.status_code == 200, as_protobuf.content[:300]


def _session(server) -> tuple[httpx.Client, str]:
    """A signed-in provider (fresh account), and the page's CSRF token."""
    import asyncio as aio

    from collector_api.store.accounts.principals import create_user
    from viewer.auth import hash_password

    email = f"p{time.monotonic_ns()}@example.com"

    async def go():
        async with create_pool(server.dsn) as pool:
            await create_user(pool, email, hash_password("hostile password 1"), "provider", None)
    aio.run(go())
    client = httpx.Client(base_url=server.url, timeout=30)
    token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post("/login", data={"email": email, "password": "hostile password 1", "csrf_token": token,
                                    "next": "/"})
    assert r.status_code == 303, r.text[:300]
    token = client.get("/alerts").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client, token


def client_chunked(port: int, path: str) -> int:
    """A chunked body without Content-Length: refused at once (411), not waited for."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S + 10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n".encode())
        return int(sock.recv(200).split(b" ", 2)[1])


def _concrete(path: str) -> str:
    return path.replace("{log_id}", "1").replace("{rule_id}", "1").replace("{name}", "x").replace(
        "{action}", "disable")


@pytest.mark.parametrize("route", [k for k, v in ROUTES.items() if v != "ingest"], ids=lambda k: k[1])
def test_hostile_bodies_on_every_other_body_route(hostile_server, route):
    server, keys = hostile_server
    client, token = _session(server)
    path = _concrete(route[1])
    kind = ROUTES[route]
    key = {"X-API-Key": keys["erase" if kind == "erase" else "review"]} if kind in ("api", "erase") else {}
    limit = ERASURE_LIMIT if kind == "erase" else FORM_LIMIT
    form = {"csrf_token": token}
    hostile_values = ["\x00", "A" * 500_000, "{" * 5000, "<script>alert(1)</script>", "\ud800".encode(
        "utf-8", "surrogatepass").decode("latin-1"), "' OR 1=1 --"]
    try:
        answers = {
            "oversized": client.post(path, content=b"a=" + b"x" * limit, headers={
                **key, "Content-Type": "application/x-www-form-urlencoded"}),
            "deep JSON": client.post(path, content=b"[" * 5000 + b"]" * 5000,
                                     headers={**key, "Content-Type": "application/json"}),
            "garbage": client.post(path, content=b"\xff\xfe\x00garbage", headers={**key, "Content-Type": "text/plain"}),
            **{f"value {i}": client.post(path, data={**form, "verdict": v, "note": v, "name": v, "email": v,
                                                     "password": v, "metric": v, "webhook": v, "next": v},
                                         headers=key) for i, v in enumerate(hostile_values)},
            "JSON values": client.post(path, json={"verdict": "{" * 3000, "flags": [[[[]]]] * 1000, "note": "\x00"},
                                       headers=key),
        }
    finally:
        client.close()
    server_errors = {name: (r.status_code, r.text[:200]) for name, r in answers.items() if r.status_code >= 500}
    assert not server_errors, f"{route}: {server_errors}"
    assert answers["oversized"].status_code == 413, answers["oversized"].text[:200]
    chunked = client_chunked(server.port, path)
    assert chunked == 411, chunked
    status, waited = _stalled_status(server.port, path, keys["erase" if kind == "erase" else "review"],
                                     "application/json")
    assert status == 408 and waited < TIMEOUT_S + 5, (status, waited)


# ---- the OTLP/gRPC port ----------------------------------------------------------------------

def test_every_grpc_method_has_an_entry(hostile_server):
    """The methods the live gRPC server registered, and those the app's receivers call for."""
    server, _ = hostile_server
    registered = server.app.state.grpc.methods
    assert set(registered) == set(GRPC_METHODS), "add these methods to GRPC_METHODS (and so to the hostile suite)"
    assert set(grpc_methods(RECEIVERS)) == set(GRPC_METHODS)
    assert {name: r.path for name, r in registered.items()} == GRPC_METHODS


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def _deep_any_value(levels: int) -> bytes:
    """An AnyValue of `levels` nested arrays, built as bytes (protobuf itself refuses to build it)."""
    value = b""
    for _ in range(levels):
        value = _field(5, _field(1, value))  # AnyValue.array_value -> ArrayValue.values
    return value


def _request_with(method: str, value: bytes) -> bytes:
    """The export request of `method` whose one record carries the AnyValue `value` (a log body, a
    span attribute)."""
    if "LogsService" in method:  # resource_logs -> scope_logs -> log_records -> body
        return _field(1, _field(2, _field(2, _field(5, value))))
    span = _field(1, b"\x01" * 16) + _field(2, b"\x02" * 8) + _field(9, _field(1, b"k") + _field(2, value))
    return _field(1, _field(2, _field(2, span)))  # resource_spans -> scope_spans -> spans


def _deep_request(method: str, levels: int) -> bytes:
    return _request_with(method, _deep_any_value(levels))


def _text_request(method: str, size: int) -> bytes:
    return _request_with(method, _field(1, b" " * size))  # AnyValue.string_value


def _grpc_call(channel, method: str, payload, metadata, **kwargs):
    import grpc

    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        call(payload, metadata=metadata, timeout=30, **kwargs)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def _stalled_grpc(channel, method: str, key: str) -> tuple[object, float, str]:
    """A call whose message never comes: (status code, seconds until answered, details)."""
    import threading

    import grpc

    release = threading.Event()

    def never():
        release.wait(TIMEOUT_S + 20)  # bounded: the server answers long before
        return
        yield  # a generator that yields nothing until released

    call = channel.stream_unary(method, request_serializer=None, response_deserializer=None)
    started = time.monotonic()
    try:
        call(never(), metadata=(("x-api-key", key),), timeout=TIMEOUT_S + 10)
        return grpc.StatusCode.OK, time.monotonic() - started, ""
    except grpc.RpcError as exc:
        return exc.code(), time.monotonic() - started, exc.details() or ""
    finally:
        release.set()


@pytest.mark.parametrize("method", GRPC_METHODS, ids=lambda m: m.split("/")[1].rsplit(".", 1)[1])
def test_hostile_messages_on_every_grpc_method(hostile_server, method):
    import grpc

    server, keys = hostile_server
    key = (("x-api-key", keys["ingest"]),)
    codes = grpc.StatusCode
    with grpc.insecure_channel(server.target) as channel:
        cases = {
            "1,000-deep protobuf": (_grpc_call(channel, method, _deep_request(method, 1000), key),
                                    codes.INVALID_ARGUMENT),
            "not protobuf": (_grpc_call(channel, method, b"\xff" * 64, key), codes.INVALID_ARGUMENT),
            "oversized message": (_grpc_call(channel, method, _text_request(method, LIMIT), key),
                                  codes.RESOURCE_EXHAUSTED),
            "gzip bomb": (_grpc_call(channel, method, _text_request(method, 32 * LIMIT), key,
                                     compression=grpc.Compression.Gzip), codes.RESOURCE_EXHAUSTED),
            "no key": (_grpc_call(channel, method, b"", ()), codes.UNAUTHENTICATED),
            "bad key": (_grpc_call(channel, method, b"", (("x-api-key", "fo_not-a-key"),)), codes.UNAUTHENTICATED),
            "bad bearer": (_grpc_call(channel, method, b"", (("authorization", "Bearer fo_x"),)),
                           codes.UNAUTHENTICATED),
            "wrong-scope key": (_grpc_call(channel, method, b"", (("x-api-key", keys["read"]),)),
                                codes.PERMISSION_DENIED),
        }
        two = channel.stream_unary(method, request_serializer=None, response_deserializer=None)
        try:
            two(iter([b"", b""]), metadata=key, timeout=30)
            cases["two messages"] = ((codes.OK, ""), codes.INVALID_ARGUMENT)
        except grpc.RpcError as exc:
            cases["two messages"] = ((exc.code(), exc.details()), codes.INVALID_ARGUMENT)
        stalled_code, waited, details = _stalled_grpc(channel, method, keys["ingest"])
    wrong = {name: got for name, (got, expected) in cases.items() if got[0] != expected}
    assert not wrong, f"{method}: {wrong}"
    assert not [got for got, _ in cases.values() if got[0] in (codes.UNKNOWN, codes.INTERNAL)]
    assert "not a valid protobuf" in cases["1,000-deep protobuf"][0][1]
    assert stalled_code == codes.DEADLINE_EXCEEDED and "did not arrive" in details, (stalled_code, details)
    assert waited < TIMEOUT_S + 5, waited
