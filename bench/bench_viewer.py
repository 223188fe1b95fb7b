"""Viewer latency over HTTP on a loaded store.

Loads realistic workflow logs (several tenants, 90 days, skewed volumes) with binary-free
text COPY and a progress bar, starts the real app (collector + viewer) under uvicorn in a
child process, and times sequential requests over loopback for each page and API call.

    .venv/bin/python bench/bench_viewer.py [--logs 100000] [--dsn postgresql://...] [--smoke]

Without --dsn an embedded PostgreSQL is started in a temporary directory (removed at exit).
Targets (at 1,000,000 logs): overview p95 <= 150 ms, search <= 100 ms, ticket detail <= 50 ms.
Reviews (--reviews, default a tenth of the logs): review queue <= 100 ms, search by
verdict <= 100 ms, overview with calibration <= 150 ms, posting a review <= 50 ms.
Targets (at 1,000,000 logs): overview p95 <= 150 ms, search <= 100 ms, ticket detail <= 50 ms,
usage report <= 200 ms, compare <= 100 ms.
Sessions (every log has a customer; regulars come back; one customer of client-00 has 10,000
tickets): /sessions p95 <= 150 ms, a session page <= 50 ms, the 10,000-ticket session <= 100 ms,
the overview with the recontact rate <= 150 ms.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import psycopg  # noqa: E402
from tqdm import tqdm  # noqa: E402

from collector_api.contract.derived import derived_json, draft_excerpt  # noqa: E402  (what the collector stores)
from collector_api.contract.sessions import derive_session_key  # noqa: E402

EXAMPLE = json.loads((ROOT / "docs" / "workflow-log.example.json").read_text())
BYTES_PER_LOG = 6_000  # table + TOAST + indexes (4.3 GB at 1M, 5.x at 10M with scores and reviews) + margin
NODES = ("fetch_ticket", "planner", "react_agent", "vision_search", "text_rag", "evidence_resolution",
         "draft_response", "audit_log")
PASSWORD = "bench-password-123"
COLUMNS = ("id", "client_id", "ticket_id", "status", "executed_at", "trace_id", "environment", "workflow_version",
           "resolution_status", "overall_confidence", "hallucination_risk", "react_iterations",
           "execution_time_seconds", "input_tokens", "output_tokens", "cost_usd", "complete", "node_durations",
           "log_data", "critical_path", "usage_by_model", "session_key",
           "draft_excerpt")  # the last four as the collector derives them
REGULARS = 100  # per tenant: customers who write a third of the tickets
WHALE = "[email:00000000beef]"  # client-00's customer with up to 10,000 tickets
LLM_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet")


def customer_of(rng: random.Random, logs: int) -> str:
    """A requester token: a third of the tickets from a few regulars, the rest from a crowd."""
    who = rng.randrange(REGULARS) if rng.random() < 0.33 else REGULARS + rng.randrange(max(1, logs // 2))
    return f"[email:{who:012x}]"


def make_document(rng: random.Random, tenant: str, seq: int, executed: datetime, customer: str = WHALE) -> tuple:
    """One realistic log as a workflow_logs row (without id)."""
    doc = copy.deepcopy(EXAMPLE)
    doc["trace"]["ticket"]["requester_email"] = customer
    roll = rng.random()
    status = "SUCCESS" if roll < 0.82 else ("PARTIAL" if roll < 0.93 else "FAILED")
    resolution = {"SUCCESS": "resolved", "PARTIAL": rng.choice(("escalated", "unresolved")),
                  "FAILED": "unresolved"}[status]
    confidence = round(min(0.99, max(0.05, rng.gauss(0.8 if status == "SUCCESS" else 0.45, 0.12))), 3)
    risk = round(min(0.99, max(0.01, 1 - confidence + rng.gauss(0, 0.05))), 3)
    iterations = rng.randint(1, 6)
    nodes = {n: round(rng.lognormvariate(5.5, 0.7), 1) for n in NODES}
    nodes["react_agent"] = round(nodes["react_agent"] * iterations, 1)
    duration = round(sum(nodes.values()) / 1000, 3)
    tokens_in, tokens_out = rng.randint(1500, 12000), rng.randint(200, 2000)
    cost = round(tokens_in * 2.5e-6 + tokens_out * 1e-5, 6)
    trace_id = uuid.UUID(int=rng.getrandbits(128)).hex
    ticket_id = f"T-{seq:07d}"
    env = "production" if rng.random() < 0.85 else "staging"
    version = rng.choice(("2.3.0", "2.3.1", "2.4.0"))
    doc["trace_id"] = trace_id
    doc["identification"].update(client_id=tenant, environment=env, workflow_version=version)
    doc["ticket_info"].update(ticket_id=ticket_id, executed_at=executed.isoformat(), execution_time_seconds=duration)
    doc["outcome"].update(status=status, resolution_status=resolution)
    doc["metrics"].update(react_iterations=iterations, overall_confidence=confidence, hallucination_risk=risk,
                          execution_time_seconds=duration, node_durations_ms=nodes, input_tokens=tokens_in,
                          output_tokens=tokens_out, total_tokens=tokens_in + tokens_out, cost_usd=cost)
    doc["trace"]["ticket"]["ticket_id"] = ticket_id
    template = doc["trace"]["react"]["iterations"][0]
    doc["trace"]["react"]["iterations"] = [{**template, "n": i + 1} for i in range(iterations)]
    root = doc["trace"]["spans"][0]
    spans, offset = [dict(root, duration_ms=duration * 1000)], 0.0
    for i, (name, ms) in enumerate(nodes.items()):
        spans.append({"name": name, "kind": name, "span_id": f"{i + 1:016x}", "parent_span_id": root["span_id"],
                      "start_offset_ms": offset, "duration_ms": ms,
                      "status": "ERROR" if status == "FAILED" and i == 5 else "OK",
                      "error": "tool timeout" if status == "FAILED" and i == 5 else None, "attributes": {}})
        offset += ms
    doc["trace"]["spans"] = spans
    split = rng.random()
    doc["trace"]["llm_calls"] = [  # two calls whose sums are the metrics
        {"model": rng.choice(LLM_MODELS), "input_tokens": int(tokens_in * split), "output_tokens": tokens_out // 2,
         "cost_usd": round(cost * split, 6)},
        {"model": "gpt-4o-mini", "input_tokens": tokens_in - int(tokens_in * split),
         "output_tokens": tokens_out - tokens_out // 2, "cost_usd": round(cost - round(cost * split, 6), 6)}]
    critical, usage = derived_json(doc)
    row = (tenant, ticket_id, status, executed, trace_id, env, version, resolution, confidence, risk, iterations,
           duration, tokens_in, tokens_out, cost, True, orjson.dumps(nodes).decode(), orjson.dumps(doc).decode(),
           critical, usage, derive_session_key(tenant, "email", customer), draft_excerpt(doc))
    return row


def check_disk(path: str, logs: int) -> None:
    need = logs * BYTES_PER_LOG
    free = shutil.disk_usage(path).free
    if free < need * 1.2:
        sys.exit(f"not enough free disk at {path}: {free / 1e9:.1f} GB free, ~{need / 1e9:.1f} GB needed")


CHUNK = 20_000  # logs per COPY transaction; a chunk's rows depend only on (seed, chunk), never on the worker


def load(dsn: str, logs: int, tenants: int, days: int, seed: int = 7, workers: int | None = None) -> dict:
    """COPY `logs` logs spread over `days` days and `tenants` tenants (Zipf-like volumes), in
    chunks of CHUNK logs by `workers` processes in parallel (default: one per core).

    Into an empty table of 100,000 logs or more, the secondary indexes are dropped first and built
    after the load (one sort per index instead of a random insert per row); the primary key, the
    unique keys and the triggers stay. Returns the seconds of each phase."""
    from collector_api.store.logs.partitions import ensure_partitions

    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn, first=(now - timedelta(days=days)).date().replace(day=1))
        for name in tenant_names(tenants):
            conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (name,))
        first_id = conn.execute("SELECT nextval('workflow_logs_id_seq')").fetchone()[0]
        conn.execute("SELECT setval('workflow_logs_id_seq', %s)", (first_id + logs,))
        empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM workflow_logs)").fetchone()[0]
        deferred = _drop_secondary_indexes(conn) if empty and logs >= 100_000 else []
        # COPY refuses tables under row-level security: a loader that is the owner (not a superuser)
        # lifts FORCE for the load only, as migration 0004 does.
        lifted = not conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                                  ).fetchone()[0]
        if lifted:
            conn.execute("ALTER TABLE workflow_logs NO FORCE ROW LEVEL SECURITY")
    phases = {}
    try:
        t0 = time.perf_counter()
        chunks = [(dsn, seed, c, c * CHUNK, min(CHUNK, logs - c * CHUNK), first_id, logs, tenants, days, now)
                  for c in range(-(-logs // CHUNK))]
        workers = max(1, min(workers or os.cpu_count() or 1, len(chunks)))
        with tqdm(total=logs, unit="log", desc=f"loading ({workers} workers)", file=sys.stderr) as bar:
            if workers == 1:
                for chunk in chunks:
                    bar.update(_load_chunk(chunk))
            else:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                    for n in pool.map(_load_chunk, chunks):
                        bar.update(n)
        phases["copy"] = time.perf_counter() - t0
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            if lifted:
                conn.execute("ALTER TABLE workflow_logs FORCE ROW LEVEL SECURITY")
            t0 = time.perf_counter()
            conn.execute("SET maintenance_work_mem = '1GB'")
            for statement in deferred:
                conn.execute(statement)
            phases["indexes"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            # A steady-state store has been vacuumed by autovacuum (visibility map: index-only scans).
            conn.execute("VACUUM ANALYZE workflow_logs")
            phases["vacuum"] = time.perf_counter() - t0
    return phases


def tenant_names(tenants: int) -> list[str]:
    return [f"client-{i:02d}" for i in range(tenants)]


def _drop_secondary_indexes(conn) -> list[str]:
    """Drop workflow_logs' indexes that back no constraint; return the statements recreating them."""
    rows = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " WHERE i.indrelid = 'workflow_logs'::regclass"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)").fetchall()
    for name, _ in rows:
        conn.execute(f"DROP INDEX {name}")  # names from the catalog, not from input
    # pg_get_indexdef says "ON ONLY" for a partitioned table's index: recreated that way it would index
    # no partition (and stay invalid). Without ONLY it is built on every partition.
    return [definition.replace(" ON ONLY ", " ON ", 1) for _, definition in rows]


def _load_chunk(task: tuple) -> int:
    """COPY one chunk of logs in one transaction (run in a worker process)."""
    dsn, seed, chunk, start, n, first_id, logs, tenants, days, now = task
    rng = random.Random(seed * 1_000_003 + chunk)
    names = tenant_names(tenants)
    weights = [1 / (i + 1) for i in range(tenants)]
    whale_every = max(2, logs // min(10_000, max(1, logs // 10)))  # 10,000 tickets (a tenth of small loads)
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY workflow_logs ({', '.join(COLUMNS)}) FROM STDIN") as copy_in:
            for seq in range(start, start + n):
                tenant = rng.choices(names, weights)[0]
                customer = customer_of(rng, logs)
                if seq % whale_every == 0:
                    tenant, customer = names[0], WHALE
                executed = now - timedelta(seconds=rng.random() * days * 86400)
                copy_in.write_row((first_id + seq, *make_document(rng, tenant, seq, executed, customer)))
    return n


SCORED = 0.3  # share of the logs an evaluator ("groundedness", every tenant) has scored


def load_scores(dsn: str, fraction: float) -> int:
    """Scores of one deterministic evaluator on a `fraction` of the logs, as the evaluate job stores them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluators (name, kind) VALUES ('groundedness', 'groundedness')"
                     " ON CONFLICT (name) DO NOTHING")
        conn.execute("SELECT setseed(0.29)")
        count = conn.execute(
            "INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score, reason)"
            " SELECT client_id, id, executed_at, 'groundedness', 1,"
            "  round(least(1, greatest(0, overall_confidence + (random() - 0.5) * 0.4))::numeric, 3), 'bench'"
            " FROM workflow_logs WHERE random() < %s ON CONFLICT DO NOTHING", (fraction,)).rowcount
        # Steady state: the evaluate job has caught up with the stored logs (its cursor at the newest).
        conn.execute("UPDATE evaluation_state SET (watermark, last_id) = (SELECT created_at, id FROM workflow_logs"
                     " ORDER BY created_at DESC, id DESC LIMIT 1) WHERE id = 1")
        conn.execute("VACUUM ANALYZE evaluation_scores")
    return count


def load_reviews(dsn: str, reviews: int) -> None:
    """Reviews of `reviews` random tickets (verdicts that track confidence, hallucination flags that
    track risk), written as store.reviews would: the review rows and each ticket's state."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]
        fraction = min(1.0, reviews / max(total, 1) * 1.05)
        with conn.transaction():
            conn.execute("SELECT setseed(0.17)")
            conn.execute(
                "INSERT INTO ticket_reviews (client_id, log_id, executed_at, verdict, flags, note, author, author_kind,"
                " author_role)"
                " SELECT client_id, id, executed_at, CASE WHEN random() < overall_confidence THEN 'correct'"
                "  WHEN random() < 0.5 THEN 'needs_work' ELSE 'incorrect' END,"
                "  CASE WHEN random() < hallucination_risk * 0.6 THEN ARRAY['hallucination'] ELSE '{}' END,"
                "  'bench review', 'bench@bench', 'user', 'provider'"
                " FROM workflow_logs WHERE random() < %s LIMIT %s", (fraction, reviews))
            conn.execute(
                "INSERT INTO ticket_review_state SELECT r.log_id, r.client_id, r.executed_at, l.status,"
                " l.overall_confidence, l.hallucination_risk, r.verdict, r.flags, r.corrected_draft, 1, r.id,"
                " r.created_at FROM ticket_reviews r JOIN workflow_logs l ON l.id = r.log_id"
                " AND l.executed_at = r.executed_at ON CONFLICT (log_id) DO NOTHING")
        conn.execute("VACUUM ANALYZE ticket_reviews")
        conn.execute("VACUUM ANALYZE ticket_review_state")


def measure_posts(client: httpx.Client, ids: list[int], count: int) -> tuple[list[float], list[float]]:
    """(server ms, client ms) of posting the review form (303 expected), one ticket after another."""
    token = client.get("/reviews").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    server, wall = [], []
    for i in range(count + 2):
        data = {"csrf_token": token, "verdict": ("correct", "needs_work", "incorrect")[i % 3],
                "flags": ["tone"], "note": "Customer ann@example.com was told the wrong date"}
        t0 = time.perf_counter()
        response = client.post(f"/tickets/{ids[i % len(ids)]}/reviews", data=data)
        elapsed = (time.perf_counter() - t0) * 1000
        if response.status_code != 303:
            raise SystemExit(f"review POST answered {response.status_code}: {response.text[:300]}")
        if i < 2:
            continue  # warm-up
        wall.append(elapsed)
        timing = response.headers.get("server-timing", "")
        server.append(float(timing.split("dur=", 1)[1]) if "dur=" in timing else elapsed)
    return server, wall


async def _users(dsn: str) -> None:
    from collector_api.store.accounts.principals import create_user
    from collector_api.store.core.db import create_pool
    from viewer.auth import hash_password

    async with create_pool(dsn, max_size=1) as pool:
        hashed = hash_password(PASSWORD)
        for email, role, client in (("provider@bench", "provider", None), ("client@bench", "client", "client-00")):
            try:
                await create_user(pool, email, hashed, role, client)
            except Exception:  # noqa: BLE001 - already there from an earlier run on this DSN
                pass


async def _refresh(dsn: str) -> int:
    from collector_api.store.core.db import create_pool
    from collector_api.store.logs.rollups import refresh_rollups

    async with create_pool(dsn, max_size=1) as pool:
        return await refresh_rollups(pool)


def _calibration_reads() -> list[tuple[str, object]]:
    """The calibration read, and its live computation (the baseline, same run) where the tree has
    the rollups of migration 0021; an older tree has only the live read."""
    try:
        from collector_api.store.reviews.calibration import get_calibration
    except ImportError:  # a tree before the calibration rollup
        from collector_api.store.reviews.reads import get_calibration
        return [("get_calibration", get_calibration)]

    async def live(pool, scope, start, end):
        return await get_calibration(pool, scope, start, end, use_rollup=False)
    return [("get_calibration", get_calibration), ("get_calibration live", live)]


async def _store_calls(dsn: str, n: int, only: str = "") -> list[tuple[str, list[float]]]:
    """In-process ms of the overview's store reads, the recontact rate beside the statistics it
    joined (its share of the overview, measured on the same data in the same run), and the
    calibration from its rollups beside its live computation."""
    from collector_api.store.core.db import Scope, create_pool
    from collector_api.store.logs.recontact import get_recontact
    from collector_api.store.logs.stats import get_stats, utc_midnight

    end = utc_midnight(date.today() + timedelta(days=1))
    calls = [(f"{label} ({days} d, all tenants)", fn, Scope.provider(), end - timedelta(days=days))
             for days in (30, 90) for label, fn in (("get_stats", get_stats), ("get_recontact", get_recontact))]
    now = datetime.now(UTC)  # the overview's range: [now - 90 d, now), both edges partial days
    calls += [(f"{label} (90 d, {who})", fn, scope, now - timedelta(days=90)) for label, fn in _calibration_reads()
              for who, scope in (("all tenants", Scope.provider()), ("client-00", Scope.tenant("client-00")))]
    out = []
    async with create_pool(dsn, max_size=2) as pool:
        for label, fn, scope, start in calls:
            if not wanted(only, label):
                continue
            times = []
            for _ in range(n + 2):
                t0 = time.perf_counter()
                await fn(pool, scope, start, end if "calibration" not in label else now)
                times.append((time.perf_counter() - t0) * 1000)
            out.append((label, times[2:]))
    return out


def serve(dsn: str, port: int) -> None:
    import uvicorn

    from config.server import ServerSettings
    from flusso_obs.server import create_app

    settings = ServerSettings(flusso_session_secret="bench-" + "z" * 30, flusso_login_attempts_per_minute=1000)
    uvicorn.run(create_app(settings, dsn), host="127.0.0.1", port=port, log_level="warning")


def start_app(script: str, dsn: str, port: int) -> subprocess.Popen:
    """`script --serve DSN PORT` in a child process (the real app under uvicorn), once /healthz answers."""
    server = subprocess.Popen([sys.executable, script, "--serve", dsn, str(port)])
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit("server did not start")
        time.sleep(0.2)


def login(client: httpx.Client, email: str) -> None:
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/"})
    assert response.status_code == 303, response.text[:300]


def measure(client: httpx.Client, urls: list[str], warmup: int = 2) -> tuple[list[float], list[float]]:
    """(server-side ms from Server-Timing, client-side ms) per request."""
    for url in urls[:warmup]:
        client.get(url)
    server, wall = [], []
    for url in urls:
        t0 = time.perf_counter()
        response = client.get(url)
        wall.append((time.perf_counter() - t0) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
        timing = response.headers.get("server-timing", "")
        server.append(float(timing.split("dur=", 1)[1]) if "dur=" in timing else wall[-1])
    return server, wall


def wanted(only: str, label: str) -> bool:
    """Whether the row `label` is timed under --only (comma-separated words; empty: every row)."""
    return not only or any(word and word in label for word in only.split(","))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=None, help="logs to load (default 100,000; smoke 2,000)")
    ap.add_argument("--tenants", type=int, default=8)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--reviews", type=int, default=None, help="reviews to load (default: a tenth of --logs)")
    ap.add_argument("--requests", type=int, default=None, help="timed requests per row (default 40; smoke 8)")
    ap.add_argument("--dsn", help="PostgreSQL DSN of an EMPTY migrated database (default: embedded, temporary)")
    ap.add_argument("--no-load", action="store_true", help="reuse the logs already in --dsn")
    ap.add_argument("--load-only", action="store_true", help="load and refresh the rollups, then stop")
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: one per core)")
    ap.add_argument("--smoke", action="store_true", help="small and fast (< 60 s): for CI")
    ap.add_argument("--only", default="", help="time only the rows whose label contains one of these"
                    " comma-separated words (e.g. 'overview (90,get_calibration')")
    ap.add_argument("--serve", nargs=2, metavar=("DSN", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    logs = args.logs or (2_000 if args.smoke else 100_000)
    requests = args.requests or (8 if args.smoke else 40)

    handle, tmp = None, None
    dsn = args.dsn
    if dsn is None:
        from flusso_obs.embedded import start_embedded

        tmp = Path(tempfile.mkdtemp(prefix="flusso-bench-viewer-"))
        check_disk(str(tmp), logs)
        handle = start_embedded(tmp)
        dsn = handle.get_uri("postgres")
    server = None
    try:
        from collector_api.store.core.migrate import apply_migrations

        apply_migrations(dsn)
        if not args.no_load and args.dsn:
            with psycopg.connect(dsn) as conn:
                try:
                    data_dir = conn.execute("SHOW data_directory").fetchone()[0]
                except psycopg.Error:
                    data_dir = None  # not allowed to see it: the server is not ours to check
            if data_dir and Path(data_dir).exists():
                check_disk(data_dir, logs)
        if not args.no_load:
            t0 = time.perf_counter()
            phases = load(dsn, logs, args.tenants, args.days, workers=args.workers)
            load_s = time.perf_counter() - t0
            print(f"loaded {logs:,} logs in {load_s:.1f} s ({logs / load_s:,.0f} logs/s): "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
            reviews = args.reviews if args.reviews is not None else logs // 10
            t0 = time.perf_counter()
            load_reviews(dsn, reviews)
            print(f"loaded ~{reviews:,} reviews in {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            scored = load_scores(dsn, SCORED)
            print(f"loaded {scored:,} evaluator scores in {time.perf_counter() - t0:.1f} s")
        asyncio.run(_users(dsn))
        t0 = time.perf_counter()
        days = asyncio.run(_refresh(dsn))
        print(f"rollup refresh: {days} day(s) in {time.perf_counter() - t0:.1f} s")
        if args.load_only:
            return 0
        with psycopg.connect(dsn) as conn:
            total = conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            print(f"database: {total:,} logs, {size / 1e9:.1f} GB")
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM workflow_logs TABLESAMPLE SYSTEM (1) LIMIT 500").fetchall()] or \
                [r[0] for r in conn.execute("SELECT id FROM workflow_logs LIMIT 500").fetchall()]
            sessions = [r[0] for r in conn.execute(
                "SELECT session_key FROM workflow_logs TABLESAMPLE SYSTEM (1) WHERE session_key IS NOT NULL"
                " LIMIT 200").fetchall()] or \
                [r[0] for r in conn.execute("SELECT session_key FROM workflow_logs LIMIT 200").fetchall()]
            whale = derive_session_key("client-00", "email", WHALE)
            whale_tickets = conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = 'client-00'"
                                         " AND session_key = %s", (whale,)).fetchone()[0]
        port = 18000 + os.getpid() % 1000
        server = start_app(__file__, dsn, port)
        base = f"http://127.0.0.1:{port}"

        rng = random.Random(1)
        today = date.today()
        week = (today - timedelta(days=6)).isoformat()
        last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        rows: list[tuple[str, str, list[float], list[float]]] = []
        with httpx.Client(base_url=base, timeout=60) as provider, httpx.Client(base_url=base, timeout=60) as client:
            login(provider, "provider@bench")
            login(client, "client@bench")
            plan = [
                ("provider", "overview (30 days, all tenants)", provider, ["/"]),
                ("provider", "overview (90 days, all tenants)", provider, [f"/?start={today - timedelta(days=89)}"]),
                ("client", "overview (30 days, own tenant)", client, ["/"]),
                ("client", "overview (90 days, own tenant)", client, [f"/?start={today - timedelta(days=89)}"]),
                ("provider", "GET /api/v1/stats (30 days)", provider, ["/api/v1/stats"]),
                ("provider", "search: no filter", provider, ["/tickets"]),
                ("provider", "search: status=FAILED, client", provider, ["/tickets?status=FAILED&client=client-01"]),
                ("provider", "search: confidence>=0.9, sort=confidence", provider,
                 ["/tickets?min_confidence=0.9&sort=confidence"]),
                ("provider", "search: last 7 days, min_duration=6", provider,
                 [f"/tickets?start={week}&min_duration=6"]),
                ("provider", "search: ticket id prefix", provider, ["/tickets?ticket=T-00012"]),
                ("client", "search: own tenant, no filter", client, ["/tickets"]),
                ("provider", "search page 2 (keyset)", provider, None),
                ("provider", "GET /api/v1/tickets", provider, ["/api/v1/tickets?status=PARTIAL"]),
                ("provider", "ticket detail", provider, [f"/tickets/{i}" for i in ids]),
                ("provider", "GET /api/v1/tickets/{id}", provider, [f"/api/v1/tickets/{i}" for i in ids]),
                # reviews (the overview rows above include the calibration)
                ("provider", "review queue (all tenants)", provider, ["/reviews"]),
                ("client", "review queue (own tenant)", client, ["/reviews"]),
                ("provider", "review queue: status=SUCCESS, client", provider,
                 ["/reviews?status=SUCCESS&client=client-01"]),
                ("provider", "search: verdict=incorrect", provider, ["/tickets?verdict=incorrect"]),
                ("provider", "search: flag=hallucination, 7 days", provider,
                 [f"/tickets?flag=hallucination&start={week}"]),
                ("client", "search: own tenant, reviewed=no", client, ["/tickets?reviewed=no"]),
                ("provider", "search: eval score <= 0.3", provider, ["/tickets?eval=groundedness&max_score=0.3"]),
                ("client", "search: own tenant, eval score >= 0.9", client,
                 ["/tickets?eval=groundedness&min_score=0.9"]),
                ("provider", "GET /api/v1/tickets?eval=..., 7 days", provider,
                 [f"/api/v1/tickets?eval=groundedness&min_score=0.5&start={week}"]),
                ("provider", "GET /api/v1/tickets/{id}/reviews", provider,
                 [f"/api/v1/tickets/{i}/reviews" for i in ids]),
                # usage report and ticket comparison
                ("provider", "usage page (this month, all tenants)", provider, ["/usage"]),
                ("provider", "GET /api/v1/usage (last month)", provider, [f"/api/v1/usage?month={last_month}"]),
                ("provider", "GET /api/v1/usage.csv (90 days)", provider,
                 [f"/api/v1/usage.csv?start={today - timedelta(days=89)}&end={today}"]),
                ("client", "GET /api/v1/usage (own tenant)", client, [f"/api/v1/usage?month={last_month}"]),
                ("provider", "compare two tickets", provider,
                 [f"/compare?a={a}&b={b}" for a, b in zip(ids, ids[1:], strict=False) if a != b]),
                # customer sessions and the recontact rate (the overview rows above include it)
                ("provider", "sessions (30 days, all tenants)", provider, ["/sessions"]),
                ("provider", "sessions: client, recontacted=yes", provider,
                 ["/sessions?client=client-01&recontacted=yes"]),
                ("client", "sessions (own tenant)", client, ["/sessions"]),
                ("provider", "GET /api/v1/sessions page 2 (keyset)", provider, "sessions-page-2"),
                ("provider", "session page (sampled sessions)", provider, [f"/sessions/{k}" for k in sessions]),
                ("provider", f"session page: {whale_tickets:,} tickets", provider, [f"/sessions/{whale}"]),
                ("provider", f"GET /api/v1/sessions/{{key}} ({whale_tickets:,})", provider,
                 [f"/api/v1/sessions/{whale}"]),
                ("provider", "GET /api/v1/stats with recontact (90 d)", provider,
                 [f"/api/v1/stats?start={today - timedelta(days=89)}"]),
            ]
            for who, label, session, urls in plan:
                if not wanted(args.only, label):
                    continue
                if urls is None:
                    cursor = provider.get("/api/v1/tickets").json()["next_cursor"]
                    urls = [f"/tickets?after={cursor}"]
                elif urls == "sessions-page-2":
                    cursor = provider.get("/api/v1/sessions").json()["next_cursor"]
                    urls = [f"/api/v1/sessions?after={cursor}"]
                urls = [rng.choice(urls) if len(urls) > 1 else urls[0] for _ in range(requests)]
                rows.append((who, label, *measure(session, urls)))
            if wanted(args.only, "POST /tickets/{id}/reviews"):
                rows.append(("provider", "POST /tickets/{id}/reviews (form, 303)",
                             *measure_posts(provider, ids, requests)))
        print(f"\nviewer latency, {total:,} logs, {args.tenants} tenants, {args.days} days,"
              f" {requests} sequential requests per row, ms. server = Server-Timing (handler),"
              " client = over HTTP on loopback")
        print(f"{'as':<9} {'request':<42} {'server p50':>10} {'server p95':>10} {'client p95':>10} {'max':>8}")
        for who, label, server_ms, wall_ms in rows:
            print(f"{who:<9} {label:<42} {statistics.median(server_ms):10.1f} {pct(server_ms, 0.95):10.1f}"
                  f" {pct(wall_ms, 0.95):10.1f} {max(wall_ms):8.1f}")
        print("\nthe overview's store reads in-process (same data, same run), ms")
        for label, times in asyncio.run(_store_calls(dsn, requests, args.only)):
            print(f"{'store':<9} {label:<42} {statistics.median(times):10.1f} {pct(times, 0.95):10.1f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if handle is not None:
            handle.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
