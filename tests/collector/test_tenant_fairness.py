"""One tenant holding many slow uploads cannot starve the others; a stalled
body times out (408) and frees its slots."""
import socket
import time

import httpx

from config.server import ServerSettings
from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import LiveServer, make_key, metric, wait_until


def _stalled_upload(port: int, key: str) -> socket.socket:
    """An ingest request whose body never finishes: headers and 10 of 100,000 bytes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall((f"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                  f"X-API-Key: {key}\r\nContent-Length: 100000\r\n\r\n").encode() + b"\x0a" * 10)
    return sock


def _status_of(sock: socket.socket) -> int:
    data = sock.recv(4096)
    return int(data.split(b" ", 2)[1]) if data else 0


def test_tenant_with_many_slow_uploads_does_not_starve_another(db_dsn):
    settings = ServerSettings(_env_file=None, flusso_session_secret="t" * 40, flusso_max_inflight_requests=8,
                              flusso_max_inflight_per_tenant=4, flusso_body_timeout_seconds=3)
    slow_key, other_key = make_key(db_dsn, "slowpoke"), make_key(db_dsn, "acme")
    server = LiveServer(db_dsn, settings).start()
    stalled = []
    try:
        stalled = [_stalled_upload(server.port, slow_key) for _ in range(8)]  # the global bound's worth
        # the server has taken all 8 in: 4 admitted and hanging, 4 refused at the tenant's bound
        assert wait_until(lambda: metric(server.url, "flusso_requests_in_flight") == 4 and metric(
            server.url, "flusso_logs_rejected_total", client_id="slowpoke", reason="tenant_overloaded") == 4, 10)
        started = time.monotonic()
        body = make_request(make_record(make_log(ticket_id="B-1"))).SerializeToString()
        r = httpx.post(server.url + "/v1/logs", content=body, timeout=10,
                       headers={"Content-Type": "application/x-protobuf", "X-API-Key": other_key})
        assert r.status_code == 200, r.content
        assert time.monotonic() - started < 2.5  # answered while the slow uploads still hang
        statuses = sorted(_status_of(s) for s in stalled)
        # 4 were admitted and time out after 3 s with 408; the other 4 were refused at once: 503
        assert statuses == [408] * 4 + [503] * 4, statuses
        # their slots are free again: the slow tenant itself is served once it sends properly
        r = httpx.post(server.url + "/v1/logs", content=make_request(make_record(
            make_log(client_id="slowpoke", ticket_id="A-1"))).SerializeToString(), timeout=10,
            headers={"Content-Type": "application/x-protobuf", "X-API-Key": slow_key})
        assert r.status_code == 200, r.content
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def test_503_for_a_tenant_at_its_bound_carries_retry_after(db_dsn):
    settings = ServerSettings(_env_file=None, flusso_session_secret="t" * 40, flusso_max_inflight_per_tenant=1,
                              flusso_body_timeout_seconds=5)
    key = make_key(db_dsn, "acme")
    server = LiveServer(db_dsn, settings).start()
    try:
        hold = _stalled_upload(server.port, key)
        assert wait_until(lambda: metric(server.url, "flusso_requests_in_flight") == 1, 10)  # admitted, hanging
        r = httpx.post(server.url + "/api/v1/logs", json=make_log(), timeout=10, headers={"X-API-Key": key})
        assert r.status_code == 503 and r.headers["Retry-After"] == "2"
        assert "limit of 1 ingest requests in flight" in r.json()["detail"]
        hold.close()
    finally:
        server.stop()
