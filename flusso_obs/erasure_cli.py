"""`flusso-obs erase`, `flusso-obs erasures list|verify`: erasures from the command line.

`erase` runs the same erasure as POST /api/v1/erasures (store.erasure), for one tenant, and writes
its signed receipt. Raw identifiers are read from a JSON file (`--from`), never from flags: a
flag is visible to every local user in `ps`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from config.server import ServerSettings, reveal

from .database import database, migrate, run_store
from .errors import CliError


def _request_body(args) -> dict:
    body: dict = {}
    if args.from_file:
        try:
            body = json.loads(Path(args.from_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliError(f"--from {args.from_file}: {exc}") from None
        if not isinstance(body, dict):
            raise CliError("--from: expected a JSON object like the body of POST /api/v1/erasures")
    body = dict(body)
    if args.request_id:
        body["request_id"] = args.request_id
    for flag, field in (("ticket", "ticket_ids"), ("trace", "trace_ids"), ("token", "tokens")):
        if getattr(args, flag):
            body[field] = list(body.get(field, [])) + getattr(args, flag)
    return body


def cmd_erase(args, settings: ServerSettings) -> None:
    from collector_api.contract.receipts import ReceiptError, parse_request
    from collector_api.erasure.service import erase
    from collector_api.store.erasure.run import ErasureConflict

    from .bootstrap import pii_hash_key

    try:
        request = parse_request(_request_body(args))
    except ReceiptError as exc:
        raise CliError(str(exc)) from None
    with database(settings) as dsn:
        migrate(dsn)
        try:
            receipt = run_store(dsn, lambda pool: erase(
                pool, request, client=args.client, receipt_key=reveal(settings.flusso_receipt_key),
                pii_secret=pii_hash_key(settings), requested_by="cli", batch=args.batch))
        except (ReceiptError, ErasureConflict) as exc:
            raise CliError(str(exc)) from None
    text = json.dumps(receipt, indent=2, sort_keys=True)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"erasure {request.request_id} done: {receipt['counts']}; receipt written to {args.out}", file=sys.stderr)
    else:
        print(text)


def cmd_erasures_verify(args, settings: ServerSettings) -> None:
    from collector_api.contract.receipts import verify

    key = reveal(settings.flusso_receipt_key)
    if not key:
        raise CliError("FLUSSO_RECEIPT_KEY is not set: a receipt can only be checked with the key that signed it")
    try:
        receipt = json.loads(Path(args.receipt).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"{args.receipt}: {exc}") from None
    if not verify(receipt, key):
        raise CliError(f"{args.receipt}: INVALID signature (altered, or signed with another key)")
    print(f"{args.receipt}: valid; {receipt.get('kind')} {receipt.get('request_id')} of tenant"
          f" {receipt.get('client_id')}, {receipt.get('status')} at {receipt.get('finished_at')}:"
          f" {receipt.get('counts')}")


def cmd_erasures_list(args, settings: ServerSettings) -> None:
    from collector_api.store.core.db import Scope
    from collector_api.store.erasure.reads import list_erasures

    with database(settings) as dsn:
        migrate(dsn)
        rows = run_store(dsn, lambda pool: list_erasures(pool, Scope.provider(), client=args.client,
                                                         limit=args.limit))
    print(f"{'STARTED':<20} {'CLIENT':<16} {'KIND':<9} {'REQUEST_ID':<32} {'STATUS':<8} COUNTS")
    for r in rows:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()) if v)
        print(f"{r['started_at']:%Y-%m-%d %H:%M:%S} {r['client_id']:<16} {r['kind']:<9} {r['request_id']:<32}"
              f" {r['status']:<8} {counts or '-'}")


def add_erasure_commands(sub) -> None:
    help_ = "erase a tenant's customer data now (by ticket ids, trace ids, tokens, identifiers) with a signed receipt"
    p = sub.add_parser("erase", help=help_, description=help_ + ". See docs/privacy.md.")
    p.set_defaults(fn=cmd_erase)
    p.add_argument("--client", required=True, help="the tenant")
    p.add_argument("--request-id", help="your id for this erasure (the same id again returns the same receipt)")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="a JSON body like POST /api/v1/erasures' (request_id, ticket_ids, trace_ids, tokens,"
                        " identifiers): raw identifiers go here, never on the command line")
    p.add_argument("--ticket", action="append", default=[], help="a ticket id (repeatable)")
    p.add_argument("--trace", action="append", default=[], help="a trace id, 32 hex (repeatable)")
    p.add_argument("--token", action="append", default=[], help="a person token, e.g. [email:3f2a9c01b7de]"
                                                                " (otel_bridge.erasure_tokens; repeatable)")
    p.add_argument("--batch", type=int, default=1000, help="logs erased per transaction (default 1000)")
    p.add_argument("--out", metavar="RECEIPT.json", help="write the signed receipt here (default: stdout)")
    erasures = sub.add_parser("erasures", help="the erasure log and receipts", description="The erasure log.")
    es = erasures.add_subparsers(dest="erasures_command", required=True, metavar="ACTION")
    p = es.add_parser("verify", help="check a receipt's signature with FLUSSO_RECEIPT_KEY")
    p.add_argument("receipt", metavar="RECEIPT.json")
    p.set_defaults(fn=cmd_erasures_verify)
    p = es.add_parser("list", help="the newest erasures and retention runs (no personal data)")
    p.add_argument("--client", default=None, help="only this tenant")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(fn=cmd_erasures_list)
