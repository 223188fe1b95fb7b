"""Running `flusso-obs` as a user does: a real subprocess; waiting on what it serves."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.helpers import free_port  # noqa: F401 (re-exported: the CLI tests pick ports with it)


def cli(*args, dsn=None, stdin=None, env=None, timeout=60):
    environment = {**os.environ, **(env or {})}
    if dsn:
        environment["DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "flusso_obs.cli", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env=environment)


def wait_for(predicate, timeout=45, every=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def readyz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
