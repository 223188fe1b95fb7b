"""`flusso-obs datasets create|list|export|delete`: datasets of a tenant's tickets (docs/experiments.md).

A search is the query string of the viewer's /tickets page, parsed by the viewer's own parser
(viewer.datasets.parse_selection): one filter language for the page, the API and this command.
"""
from __future__ import annotations

import sys

from .database import database, migrate, run_store
from .errors import CliError


def _provider():
    from viewer.auth import Principal

    return Principal(role="provider", client_id=None, email="cli")


def cmd_datasets_create(args, settings):
    from collector_api.store.datasets.writes import DatasetError, create_dataset
    from viewer.datasets import dataset_client, parse_name, parse_selection
    from viewer.errors import ViewerError

    values = {"search": args.from_search, "queue": args.from_queue, "limit": args.limit,
              "log_ids": _ids(args.ids) if args.ids else None}
    try:
        name, client = parse_name(args.name), dataset_client(args.client, _provider())
        selection = parse_selection(values, _provider())
    except ViewerError as exc:
        raise CliError(exc.message) from None
    with database(settings) as dsn:
        migrate(dsn)
        try:
            row = run_store(dsn, lambda pool: create_dataset(pool, client, name, selection, "cli"))
        except DatasetError as exc:
            raise CliError(str(exc)) from None
    print(f"created dataset {row['name']!r} of {row['client_id']} with {row['item_count']} items (id {row['id']})")


def _ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise CliError("--ids: expected ticket ids (the numbers of /tickets/ID), comma-separated") from None


def cmd_datasets_list(args, settings):
    from collector_api.store.core.db import Scope
    from collector_api.store.datasets.reads import list_datasets

    with database(settings) as dsn:
        rows = run_store(dsn, lambda pool: list_datasets(pool, Scope.provider(), args.client))
    print(f"{'CLIENT':<16} {'NAME':<24} {'ITEMS':>7} {'SOURCE':<7} {'EXPERIMENTS':>11} CREATED")
    for r in rows:
        print(f"{r['client_id']:<16} {r['name']:<24} {r['item_count']:>7} {r['source']:<7} {r['experiments']:>11}"
              f" {r['created_at']:%Y-%m-%d %H:%M}")


def cmd_datasets_export(args, settings):
    from collector_api.store.core.db import Scope
    from collector_api.store.datasets.reads import get_dataset, iter_items
    from viewer.datasets import item_json
    from viewer.jsonout import dumps

    async def export(pool) -> int:
        row = await get_dataset(pool, Scope.provider(args.client), args.client, args.name)
        if row is None:
            raise CliError(f"no dataset {args.name!r} of {args.client}")
        n = 0
        async for item in iter_items(pool, Scope.provider(args.client), row):
            sys.stdout.buffer.write(dumps(item_json(item)) + b"\n")
            n += 1
        return n

    with database(settings) as dsn:
        n = run_store(dsn, export)
    sys.stdout.flush()
    print(f"exported {n} items", file=sys.stderr)


def cmd_datasets_delete(args, settings):
    from collector_api.store.datasets.writes import delete_dataset

    with database(settings) as dsn:
        done = run_store(dsn, lambda pool: delete_dataset(pool, args.client, args.name))
    if done is None:
        raise CliError(f"no dataset {args.name!r} of {args.client}")
    if not done.experiments:
        print(f"deleted dataset {args.name!r} of {args.client} and its {done.items} items")
        return
    names = ", ".join(repr(n) for n in done.experiments[:10]) + (", ..." if len(done.experiments) > 10 else "")
    print(f"deleted dataset {args.name!r} of {args.client}: it is gone from the lists and can no longer be run"
          f" (its name is free again); its {done.items} items stay as the snapshot of its"
          f" {len(done.experiments)} experiment(s) ({names}), which stay viewable, marked 'dataset deleted'")


def add_datasets(sub) -> None:
    ds = sub.add_parser("datasets", help="datasets of tickets for experiments",
                        description="Datasets of a tenant's tickets (docs/experiments.md).")
    acts = ds.add_subparsers(dest="datasets_command", required=True, metavar="ACTION")
    p = acts.add_parser("create", help="copy tickets into a new dataset")
    p.add_argument("--client", required=True, help="the tenant")
    p.add_argument("--name", required=True, help="1-64 letters, digits, '_', '.', '-'")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-search", help="a /tickets query string, e.g. 'verdict=incorrect&start=2026-11-01'")
    source.add_argument("--from-queue", help="the review queue's filters (same syntax); unreviewed tickets")
    source.add_argument("--ids", help="ticket ids (the numbers of /tickets/ID), comma-separated")
    p.add_argument("--limit", default=None, help="at most this many items (default and most 50,000)")
    p.set_defaults(fn=cmd_datasets_create)
    p = acts.add_parser("list", help="list datasets")
    p.add_argument("--client", default=None, help="one tenant (default: every tenant)")
    p.set_defaults(fn=cmd_datasets_list)
    p = acts.add_parser("export", help="print a dataset's items as JSON lines")
    p.add_argument("--client", required=True)
    p.add_argument("--name", required=True)
    p.set_defaults(fn=cmd_datasets_export)
    p = acts.add_parser("delete", help="delete a dataset and its items; with experiments, its items stay as their"
                                       " snapshot and they stay viewable (docs/experiments.md)")
    p.add_argument("--client", required=True)
    p.add_argument("--name", required=True)
    p.set_defaults(fn=cmd_datasets_delete)


__all__ = ["add_datasets"]
