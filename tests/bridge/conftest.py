"""Fixtures of the bridge tests: a tiny real OTLP/HTTP receiver on 127.0.0.1 whose behaviour
each test sets (status, delay, garbage, black hole), and a configured bridge."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fastjsonschema
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

import otel_bridge
from otel_bridge import runtime

from .helpers import settings

_ENV_VARS = ("LOG_COLLECTOR_URL", "LOG_COLLECTOR_API_KEY", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
             "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS", "CLIENT_ID", "ENVIRONMENT",
             "PII_HASH_KEY", "WORKFLOW_VERSION", "OTEL_SERVICE_NAME")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    otel_bridge.shutdown(timeout_seconds=1.0)


_compiled = []


def _validator():
    if not _compiled:
        with open(otel_bridge.schema_path(), encoding="utf-8") as f:
            _compiled.append(fastjsonschema.compile(json.load(f)))
    return _compiled[0]


@pytest.fixture(scope="session")
def validate_log():
    return _validator()


class Receiver:
    """OTLP/HTTP logs receiver. ``behaviour`` is read per request: status, delay_s,
    body (bytes), headers (dict)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.behaviour = {"status": 200, "delay_s": 0.0, "body": b"", "headers": {}}
        self.script: list[dict] = []  # per-request behaviours used first, in order
        self.lock = threading.Lock()
        self.open_connections = 0  # accepted and not yet closed (see settle)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                data = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                with receiver.lock:
                    b = dict(receiver.behaviour)
                    if receiver.script:
                        b.update(receiver.script.pop(0))
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append({"path": self.path, "headers": headers, "body": data,
                                              "status": b["status"]})
                if b["delay_s"]:
                    time.sleep(b["delay_s"])
                payload = b["body"]
                self.send_response(b["status"])
                for k, v in b["headers"].items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # noqa: N802 - settle()'s marker: answered, never recorded
                self.send_response(204)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):  # in the accept loop, in arrival order
                with receiver.lock:
                    receiver.open_connections += 1
                super().process_request(request, client_address)

            def shutdown_request(self, request):  # in the connection's thread, once it is done
                try:
                    super().shutdown_request(request)
                finally:
                    with receiver.lock:
                        receiver.open_connections -= 1

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def records(self):
        """(log record proto, workflow log dict) of every accepted (2xx) request. Every log is
        validated against the packaged schema on the way."""
        out = []
        with self.lock:
            reqs = list(self.requests)
        for req in reqs:
            if not 200 <= req["status"] < 300:
                continue
            msg = ExportLogsServiceRequest()
            msg.ParseFromString(req["body"])
            for rl in msg.resource_logs:
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        log = json.loads(lr.body.string_value)
                        _validator()(log)
                        out.append((lr, log))
        return out

    def wait_for(self, n: int, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            recs = self.records()
            if len(recs) >= n:
                return recs
            time.sleep(0.02)
        return self.records()

    def settle(self, timeout: float = 10.0) -> None:
        """Return once every connection that reached the receiver before the call has been
        handled and closed (a killed client's last request too): a behaviour set afterwards then
        applies only to requests sent afterwards. Connections are accepted in arrival order, so
        when a marker connection of our own has been answered, every earlier one was counted."""
        with socket.create_connection(self.server.server_address, timeout=timeout) as marker:
            marker.sendall(b"GET /settle HTTP/1.1\r\nHost: receiver\r\nConnection: close\r\n\r\n")
            while marker.recv(4096):
                pass
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.open_connections, f"{self.open_connections} connections still open after {timeout} s"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def blackhole():
    """A TCP socket that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
                conns.append(c)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join(1)
    for c in conns:
        c.close()
    srv.close()


@pytest.fixture()
def refused_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


@pytest.fixture()
def make_settings():
    return settings


def bridge_configured(endpoint=None, exporter=None, **kw):
    return otel_bridge.configure(settings(**kw), endpoint=endpoint, api_key="k-123", exporter=exporter)


@pytest.fixture()
def configure_bridge():
    return bridge_configured


@pytest.fixture()
def memory_bridge():
    """A bridge whose logs go to an in-memory exporter; yields a function returning the logs."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    exp = InMemoryLogRecordExporter()
    bridge_configured(exporter=exp)

    def logs(n: int = 1, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = exp.get_finished_logs()
            if len(got) >= n:
                break
            otel_bridge.flush(0.5)
        out = [json.loads(x.log_record.body) for x in exp.get_finished_logs()]
        for log in out:  # every log the bridge emits validates against the schema
            _validator()(log)
        return out

    logs.exporter = exp
    return logs


def state():
    return runtime.STATE
