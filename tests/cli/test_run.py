"""`flusso-obs run` (what `make run` calls) on a fresh data dir, Ctrl-C, and a second run."""
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

from .helpers import free_port, wait_for


def start_run(data_dir, port, tickets):
    env = {**os.environ, "FLUSSO_DATA_DIR": str(data_dir), "DATABASE_URL": "", "FLUSSO_PORT": str(port)}
    # No demo history here (tests/e2e/test_demo_backfill.py covers it): the counts below are the tickets sent.
    return subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "run", "--demo-tickets", str(tickets),
                             "--demo-backfill-days", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stored_count(data_dir) -> int:
    import psycopg

    dsn = f"postgresql://postgres:@/postgres?host={data_dir / 'pg'}"
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]
    except psycopg.Error:
        return -1


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def stop(proc) -> str:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = proc.communicate(timeout=30)
    return out


def test_run_serves_demo_data_stops_postgres_and_reuses_data(tmp_path):
    port = free_port()
    proc = start_run(tmp_path, port, tickets=6)
    try:
        assert wait_for(lambda: stored_count(tmp_path) >= 6), "demo tickets did not arrive"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        out = stop(proc)
    assert f"flusso-obs is running at http://127.0.0.1:{port}" in out
    creds = json.loads((tmp_path / "demo-credentials.json").read_text())
    assert (tmp_path / "demo-credentials.json").stat().st_mode & 0o777 == 0o600
    assert f"provider login: {creds['provider_email']} / {creds['provider_password']}" in out
    assert wait_for(lambda: not (tmp_path / "pg" / "postmaster.pid").exists(), 15), "PostgreSQL still running"

    proc = start_run(tmp_path, port, tickets=3)
    try:
        assert wait_for(lambda: stored_count(tmp_path) >= 9), "second run did not keep and add data"
        # Ready means the banner was printed (before the server starts): Ctrl-C during the database's
        # start would leave nothing to read, however many tickets the first run stored.
        assert wait_for(lambda: _ready(port)), "second run never became ready"
    finally:
        out = stop(proc)
    assert creds["provider_password"] in out  # same credentials, printed again
    assert wait_for(lambda: not (tmp_path / "pg" / "postmaster.pid").exists(), 15)


def test_run_refuses_a_port_in_use_before_starting_anything(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_run(tmp_path, port, tickets=1)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out and "FLUSSO_PORT" in out
    assert not (tmp_path / "pg").exists(), "nothing was started"


def test_serve_with_two_worker_processes(db_dsn, tmp_path):
    import psycopg

    from tests.collector.helpers import make_log
    from tests.helpers import make_key

    key = make_key(db_dsn, "acme")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_dsn, "FLUSSO_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(port), "--workers", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False
        assert wait_for(ready, 30)
        def worker_pids():
            return {f.stem.rsplit("_", 1)[-1] for f in (tmp_path / "metrics").glob("*/*.db")}

        sent = 0
        # One connection each; the kernel spreads them over both workers, though not evenly: send
        # until both have answered (each writes its own metric files), at least 12, at most 200.
        while sent < 12 or (len(worker_pids()) < 2 and sent < 200):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/logs", method="POST",
                                         data=json.dumps(make_log(ticket_id=f"W-{sent}")).encode(),
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
            sent += 1
        assert len(worker_pids()) == 2, worker_pids()  # one set of metric files per worker process
        # /metrics sums every worker, whichever one answers
        for _ in range(6):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            assert f'flusso_logs_received_total{{endpoint="legacy"}} {sent}.0' in text, text[:3000]
            assert f'flusso_logs_stored_total{{client_id="acme"}} {sent}.0' in text
            assert "flusso_requests_in_flight 0.0" in text
    finally:
        out = stop(proc)
    assert proc.returncode in (0, 130), out[-2000:]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0] == sent
