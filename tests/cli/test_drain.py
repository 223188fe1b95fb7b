"""SIGTERM drains `flusso-obs serve`: /readyz 503, new ingest 503 + Retry-After, the
requests in progress finish and commit, the process exits within FLUSSO_DRAIN_TIMEOUT_S; the
same with --workers. A real `serve` subprocess, real senders on loopback, a real SIGTERM."""
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import make_key

from .helpers import free_port, readyz, wait_for

DRAIN_TIMEOUT_S = 15
GRACE_S = 1.5


def post(url: str, key: str, traces: list[str], body: bytes) -> tuple[str, object, float, float]:
    """One OTLP request on a fresh connection: (outcome, status/exception, started, ended)."""
    started = time.monotonic()
    req = urllib.request.Request(url + "/v1/logs", data=body, method="POST",
                                 headers={"X-API-Key": key, "Content-Type": "application/x-protobuf"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return "ok", resp.status, started, time.monotonic()
    except urllib.error.HTTPError as exc:
        return "http", (exc.code, exc.headers.get("Retry-After")), started, time.monotonic()
    except OSError as exc:  # refused after the listener closed, or reset while it closed
        return "conn", repr(exc), started, time.monotonic()


def sender(url: str, key: str, stop: threading.Event, results: list, n: int, batch: int) -> None:
    misses = 0
    for i in range(10_000):
        if stop.is_set() or misses >= 3:
            return
        logs = [make_log("acme", ticket_id=f"D-{n}-{i}-{j}") for j in range(batch)]
        body = make_request(*(make_record(log) for log in logs)).SerializeToString()
        outcome = post(url, key, [log["trace_id"] for log in logs], body)
        results.append((outcome, [log["trace_id"] for log in logs]))
        misses = misses + 1 if outcome[0] == "conn" else 0
        if outcome[0] == "conn":
            time.sleep(0.1)


def slow_post(port: int, key: str, results: list, halfway: threading.Event, finish: threading.Event) -> None:
    """One request that is surely in flight across the SIGTERM: half its body is sent, then the
    rest only once `finish` is set (after the signal). It must still be answered 2xx and stored."""
    logs = [make_log("acme", ticket_id=f"SLOW-{j}") for j in range(5)]
    body = make_request(*(make_record(log) for log in logs)).SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    try:
        conn.putrequest("POST", "/v1/logs")
        for name, value in (("X-API-Key", key), ("Content-Type", "application/x-protobuf"),
                            ("Content-Length", str(len(body)))):
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(body[: len(body) // 2])
        halfway.set()
        finish.wait(10)
        conn.send(body[len(body) // 2:])
        resp = conn.getresponse()
        outcome = ("ok", resp.status) if resp.status < 300 else ("http", (resp.status, resp.getheader("Retry-After")))
    except OSError as exc:
        outcome = ("conn", repr(exc))
    finally:
        conn.close()
    results.append(((*outcome, started, time.monotonic()), [log["trace_id"] for log in logs]))


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_without_losing_an_acknowledged_log(db_dsn, tmp_path, workers):
    key = make_key(db_dsn, "acme")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": db_dsn, "FLUSSO_DATA_DIR": str(tmp_path),
           "FLUSSO_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S), "FLUSSO_DRAIN_GRACE_S": str(GRACE_S),
           "FLUSSO_INGEST_COUNTERS_FLUSH_SECONDS": "60"}  # only the final flush at shutdown writes them
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(port),
                             "--workers", str(workers)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    results: list = []
    stop = threading.Event()
    try:
        assert wait_for(lambda: readyz(url) == 200, 40), "server did not become ready"
        threads = [threading.Thread(target=sender, args=(url, key, stop, results, n, 40)) for n in range(4)]
        for t in threads:
            t.start()
        assert wait_for(lambda: sum(r[0][0] == "ok" for r in results) >= 4, 30), results[:3]
        halfway, finish = threading.Event(), threading.Event()
        slow = threading.Thread(target=slow_post, args=(port, key, results, halfway, finish))
        slow.start()
        assert halfway.wait(10), "the slow request did not start"
        time.sleep(0.2)  # its headers are in: the server has admitted it
        sigterm_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        ready_codes = []
        # the drain has begun (readyz says 503) before the slow request sends the rest of its body
        assert wait_for(lambda: ready_codes.append(readyz(url)) or ready_codes[-1] == 503, 10, every=0.02), \
            ready_codes
        finish.set()
        while proc.poll() is None and time.monotonic() - sigterm_at < DRAIN_TIMEOUT_S + 10:
            ready_codes.append(readyz(url))
            time.sleep(0.05)
        exited_after = time.monotonic() - sigterm_at
        stop.set()
        for t in [*threads, slow]:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode is not None and exited_after < DRAIN_TIMEOUT_S + 2, (exited_after, out[-3000:])
    assert 503 in ready_codes, ready_codes  # load balancers see the drain
    acknowledged = [traces for (kind, status, *_), traces in results if kind == "ok"]
    refused = [status for (kind, status, *_), _ in results if kind == "http"]
    # every request answered with an error was a 503 with Retry-After: retried by the OTLP exporter
    assert refused and all(code == 503 and retry for code, retry in refused), refused
    # requests already inside when SIGTERM arrived finished with a 2xx after it
    assert any(kind == "ok" and started < sigterm_at < ended for (kind, _, started, ended), _ in results), \
        "no request was in flight across the SIGTERM"
    with psycopg.connect(db_dsn) as conn:
        stored = {row[0] for row in conn.execute("SELECT trace_id FROM workflow_logs")}
        counts = dict(conn.execute("SELECT reason, sum(count)::bigint FROM ingest_counts GROUP BY reason").fetchall())
    missing = [t for traces in acknowledged for t in traces if t not in stored]
    assert not missing, f"{len(missing)} acknowledged logs lost"
    # the final flush at shutdown wrote the counters exactly: every stored log, every drain 503
    assert counts.get("stored") == len(stored) == sum(len(t) for t in acknowledged), (counts, len(stored))
    assert counts.get("draining") == len(refused), (counts, len(refused))
