"""Alerts end to end: a real `flusso-obs serve` subprocess with a short interval, a real
receiver on loopback: one signed firing and one signed resolved notification, each exactly once,
also across a restart of `serve` (state in the database). "Nothing more was sent" is checked
after the alert job has run again (job_runs), not after a sleep."""
import os
import signal
import subprocess
import sys

import psycopg

from tests.cli.helpers import cli, free_port, readyz, wait_for

from .helpers import Receiver, insert_logs, verify, wait_for_alert_ticks

INTERVAL_S = 0.5


def start_serve(dsn, data_dir, port, allow):
    env = {**os.environ, "DATABASE_URL": dsn, "FLUSSO_DATA_DIR": str(data_dir),
           "FLUSSO_ALERT_INTERVAL_S": str(INTERVAL_S), "FLUSSO_WEBHOOK_ALLOW": allow,
           "FLUSSO_PUBLIC_URL": "http://viewer.test", "FLUSSO_DRAIN_GRACE_S": "0"}
    env.pop("FLUSSO_ALERT_SECRET_KEY", None)  # the data dir's key, as `serve` keeps it
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert wait_for(lambda: readyz(f"http://127.0.0.1:{port}") == 200, 40), "serve did not become ready"
    return proc


def stop_serve(proc):
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out


def test_one_firing_one_resolved_across_a_restart(db_dsn, tmp_path):
    insert_logs(db_dsn, "acme", ["FAILED"] * 4 + ["SUCCESS"])
    with Receiver() as rx:
        created = cli("alerts", "create", "--name", "acme failing", "--metric", "failure_rate", "--op", ">",
                      "--threshold", "0.5", "--window", "5m", "--client", "acme", "--webhook", rx.url,
                      dsn=db_dsn, env={"FLUSSO_DATA_DIR": str(tmp_path)})
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip().splitlines()[-1]
        allow = f"127.0.0.1:{rx.port}"
        proc = start_serve(db_dsn, tmp_path, free_port(), allow)
        try:
            assert wait_for(lambda: len(rx.requests) >= 1, 20), "no firing notification"
            assert wait_for_alert_ticks(db_dsn), "the alert job did not run again"  # still firing, nothing new
        finally:
            stop_serve(proc)
        assert [p["state"] for p in rx.payloads()] == ["firing"]
        proc = start_serve(db_dsn, tmp_path, free_port(), allow)  # a new process: the state is in the database
        try:
            assert wait_for_alert_ticks(db_dsn), "the restarted alert job did not run"
            assert [p["state"] for p in rx.payloads()] == ["firing"], "a restart re-sent the firing"
            insert_logs(db_dsn, "acme", ["SUCCESS"] * 10)
            assert wait_for(lambda: len(rx.requests) >= 2, 20), "no resolved notification"
            assert wait_for_alert_ticks(db_dsn), "the alert job did not run again"  # resolved, nothing new
        finally:
            stop_serve(proc)
        proc = start_serve(db_dsn, tmp_path, free_port(), allow)
        try:
            assert wait_for_alert_ticks(db_dsn), "the restarted alert job did not run"
        finally:
            stop_serve(proc)
    assert [p["state"] for p in rx.payloads()] == ["firing", "resolved"]
    for req in rx.requests:
        assert verify(secret, req["headers"], req["body"])  # the secret shown at creation signs them
        assert req["path"] == "/hook"
    assert len({r["headers"]["X-Flusso-Delivery"] for r in rx.requests}) == 2
    assert rx.payloads()[1]["link"].startswith("http://viewer.test/tickets?client=acme")
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alert_deliveries WHERE status = 'delivered'").fetchone()[0] == 2
