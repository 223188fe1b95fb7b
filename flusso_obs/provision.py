"""`python -m flusso_obs.provision`: create the owner and RLS roles with a superuser, once.

For a PostgreSQL the application does not administer (compose's `db-init` service, a managed
server): run it with the superuser's DSN for the application's database; the application then
connects as the owner (DATABASE_URL with OWNER and PASSWORD). Idempotent; it also upgrades a
database an older version created with the superuser owning everything (docs/deployment.md).
"""
from __future__ import annotations

import argparse
import logging
import sys

from collector_api.store.core.roles import OWNER_ROLE, provision_owner

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flusso_obs.provision", description=__doc__.splitlines()[0])
    parser.add_argument("--admin-url", required=True, help="superuser DSN of the application's database")
    parser.add_argument("--owner", default=OWNER_ROLE, help=f"owner role to create (default {OWNER_ROLE})")
    parser.add_argument("--owner-password", default=None, help="set the owner's password (TCP connections)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    moved = provision_owner(args.admin_url, owner=args.owner, password=args.owner_password)
    print(f"role {args.owner} ready; ownership moved: {', '.join(moved) or 'nothing (already done)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
