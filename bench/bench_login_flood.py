"""Ingest latency during an unauthenticated login flood, against the same run without it.

A real `flusso-obs serve` (one process, one event loop shared by the collector and the viewer)
over an embedded PostgreSQL. Phase 1: one sender posts OTLP requests (10 logs each) at a fixed
rate and records each request's latency. Phase 2: the same, while a flood process keeps
`--flood` sign-in attempts in flight with wrong passwords for random accounts (so the
per-account delay never slows them), each from a different client address (X-Forwarded-For
from a trusted proxy, so the per-address limit never stops them: a botnet). Every attempt
costs an argon2 check (~64 MiB); the checks run off the event loop in low-priority threads,
bounded by FLUSSO_LOGIN_VERIFY_CONCURRENCY, so ingest should barely notice.

    .venv/bin/python bench/bench_login_flood.py [--smoke] [--seconds 20] [--rate 10] [--flood 32]
Target: ingest p99 during the flood <= 1.5x the p99 without it.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TARGET = 1.5
EMAIL, PASSWORD = "bench@example.com", "the-right-password-8123"


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(dsn: str) -> str:
    from collector_api.store.accounts.principals import create_api_key, create_user
    from collector_api.store.core.db import create_pool
    from viewer.auth import hash_password

    async def go() -> str:
        async with create_pool(dsn) as pool:
            await create_user(pool, EMAIL, hash_password(PASSWORD), "provider", None)
            return (await create_api_key(pool, "bench")).secret
    return asyncio.run(go())


def _bodies(n: int, per_request: int = 10) -> list[bytes]:
    from collector.helpers import make_log, make_record, make_request

    return [make_request(*(make_record(make_log(client_id=None, ticket_id=f"B-{i}-{j}")) for j in range(per_request)))
            .SerializeToString() for i in range(n)]


def _ingest(url: str, key: str, bodies: list[bytes], rate: float) -> tuple[list[float], int]:
    import httpx

    latencies, failures = [], 0
    with httpx.Client(base_url=url, timeout=30) as client:
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            t0 = time.perf_counter()
            r = client.post("/v1/logs", content=body,
                            headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})
            latencies.append(time.perf_counter() - t0)
            failures += r.status_code != 200
    return latencies, failures


def _flood(url: str, concurrency: int, stop, counts) -> None:
    """Sign-in attempts with wrong passwords, `concurrency` in flight, until `stop` is set."""
    import httpx

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:  # its own form cookie
            await attempts(client)

    async def attempts(client: httpx.AsyncClient) -> None:
        page = await client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        while not stop.is_set():
            ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
            r = await client.post("/login", headers={"X-Forwarded-For": ip},
                                  data={"email": f"{secrets.token_hex(4)}@example.com",  # no per-account delay
                                        "password": secrets.token_hex(8), "csrf_token": token})
            if 'name="csrf_token" value="' in r.text:  # each answer sets a fresh form token
                token = r.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            with counts.get_lock():
                counts[{401: 0, 503: 1, 429: 2}.get(r.status_code, 3)] += 1

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


def _serve(dsn: str, data_dir: Path, port: int, verify_concurrency: int | None,
           checks_per_second: float | None) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": dsn, "FLUSSO_DATA_DIR": str(data_dir), "FLUSSO_HOST": "127.0.0.1",
           "FLUSSO_PORT": str(port), "FLUSSO_SESSION_SECRET": secrets.token_urlsafe(32),
           "FLUSSO_FORWARDED_ALLOW_IPS": "127.0.0.1", "FLUSSO_ROLLUP_REFRESH_SECONDS": "0",
           "FLUSSO_GRPC_PORT": os.environ.get("FLUSSO_GRPC_PORT", "0")}  # HTTP only: 4317 may be taken
    if verify_concurrency:
        env["FLUSSO_LOGIN_VERIFY_CONCURRENCY"] = str(verify_concurrency)
    if checks_per_second:
        env["FLUSSO_LOGIN_CHECKS_PER_SECOND"] = str(checks_per_second)
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve"], env=env, cwd=data_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("server did not become ready")


def run(seconds: float, rate: float, flood: int, verify_concurrency: int | None = None,
        checks_per_second: float | None = None) -> dict:
    from flusso_obs.embedded import embedded_dsn, start_embedded

    tmp = Path(tempfile.mkdtemp(prefix="flusso-bench-login-"))
    handle = start_embedded(tmp)
    proc = None
    try:
        dsn = embedded_dsn(handle)
        from collector_api.store.core.migrate import apply_migrations

        apply_migrations(dsn)
        key = _prepare(dsn)
        port = _free_port()
        proc = _serve(dsn, tmp, port, verify_concurrency, checks_per_second)
        url = f"http://127.0.0.1:{port}"
        n = max(10, int(seconds * rate))
        _ingest(url, key, _bodies(5), rate)  # warm-up
        quiet, quiet_fail = _ingest(url, key, _bodies(n), rate)
        stop, counts = multiprocessing.Event(), multiprocessing.Array("i", 4)
        flooder = multiprocessing.Process(target=_flood, args=(url, flood, stop, counts), daemon=True)
        flooder.start()
        time.sleep(1.0)  # let the flood build up
        flooded, flooded_fail = _ingest(url, key, _bodies(n), rate)
        stop.set()
        flooder.join(60)
        return {"n": n, "quiet": quiet, "flooded": flooded, "failures": quiet_fail + flooded_fail,
                "logins": list(counts)}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        handle.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="a few seconds, to prove the script runs")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=10.0, help="ingest requests per second (10 logs each)")
    ap.add_argument("--flood", type=int, default=32, help="sign-in attempts in flight during the flood")
    ap.add_argument("--verify-concurrency", type=int, default=None,
                    help="FLUSSO_LOGIN_VERIFY_CONCURRENCY of the server (default: the setting's default)")
    ap.add_argument("--checks-per-second", type=float, default=None,
                    help="FLUSSO_LOGIN_CHECKS_PER_SECOND of the server (default: the setting's default)")
    args = ap.parse_args()
    seconds = 3.0 if args.smoke else args.seconds
    res = run(seconds, args.rate, 8 if args.smoke else args.flood, args.verify_concurrency, args.checks_per_second)
    quiet, flooded = res["quiet"], res["flooded"]
    ratio = pct(flooded, 99) / pct(quiet, 99)
    print(f"ingest latency, {res['n']} OTLP requests of 10 logs at {args.rate:g}/s per phase (ms)")
    print(f"{'phase':<44}{'p50':>8}{'p99':>8}{'max':>8}")
    for name, values in (("baseline: no login flood", quiet), ("during the login flood", flooded)):
        print(f"{name:<44}{pct(values, 50) * 1000:>8.1f}{pct(values, 99) * 1000:>8.1f}{max(values) * 1000:>8.1f}")
    print(f"ratio p99 flood / baseline: {ratio:.2f} (target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    checked, busy, limited, other = res["logins"]
    print(f"login attempts during the flood: {checked} checked (401), {busy} refused as busy (503),"
          f" {limited} rate-limited (429), {other} other; ingest failures: {res['failures']}")
    return 0 if res["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
