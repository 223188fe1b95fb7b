"""Serving: `serve` (collector + viewer) and `run` (the README's quick start)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from collector_api.telemetry.metrics import MULTIPROC_ENV
from config.server import ServerSettings, reveal

from .bootstrap import (
    alert_secret_key,
    bootstrap_from_settings,
    ensure_demo_credentials,
    pii_hash_key,
    session_secret,
    unsafe_secrets,
)
from .database import database, migrate
from .embedded import process_alive
from .errors import CliError

logger = logging.getLogger(__name__)


def refuse_unsafe_secrets(settings: ServerSettings) -> None:
    problems = unsafe_secrets(settings)
    if problems:
        raise CliError("refusing to serve: " + "; ".join(problems))


def _prepare(settings: ServerSettings, dsn: str) -> ServerSettings:
    """Checks, migrations, bootstrap accounts; the settings with every generated secret filled in."""
    from collector_api.alerts.targets import AllowListError, parse_allow_list
    try:
        parse_allow_list(settings.flusso_webhook_allow)
    except AllowListError as exc:
        raise CliError(str(exc)) from None
    migrate(dsn)
    asyncio.run(bootstrap_from_settings(settings, dsn))
    return settings.model_copy(update={"flusso_session_secret": SecretStr(session_secret(settings)),
                                       "flusso_pii_hash_key": _secret(pii_hash_key(settings)),
                                       "flusso_alert_secret_key": SecretStr(alert_secret_key(settings))})


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value is not None else None


def _exit_on_sigterm() -> None:
    """uvicorn re-raises the signal it caught after a graceful shutdown; for SIGTERM the default
    action would kill the process before `finally` blocks stop the embedded PostgreSQL."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _proxy_options(settings: ServerSettings) -> dict:
    """Trust X-Forwarded-* only from the configured proxies; by default from nobody."""
    allowed = settings.flusso_forwarded_allow_ips
    return {"proxy_headers": True, "forwarded_allow_ips": allowed} if allowed else {"proxy_headers": False}


def _server(settings: ServerSettings, dsn: str, host: str, port: int) -> uvicorn.Server:
    from .server import create_app

    _exit_on_sigterm()
    settings = settings.model_copy(update={"flusso_host": host})  # gRPC binds the interface HTTP binds
    app = create_app(settings, dsn, grpc_port=settings.flusso_grpc_port)
    config = uvicorn.Config(app, host=host, port=port, log_level="info",
                            server_header=False, timeout_graceful_shutdown=settings.flusso_drain_timeout_s,
                            **_proxy_options(settings))
    return uvicorn.Server(config)  # SIGTERM drains first: flusso_obs.drain (installed by the app's lifespan)


def check_ports_free(settings: ServerSettings, host: str, port: int) -> None:
    """The HTTP port, and the gRPC port unless it is off."""
    check_port_free(host, port)
    if settings.flusso_grpc_port:
        check_port_free(host, settings.flusso_grpc_port, option="--grpc-port or FLUSSO_GRPC_PORT (0 turns gRPC off)")


def check_port_free(host: str, port: int, option: str = "--port or FLUSSO_PORT") -> None:
    """Fail before anything starts when the address is taken (e.g. a second `make run`)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror} (is flusso-obs already running? "
                           f"choose another port with {option})") from None


def serve(settings: ServerSettings, *, host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Migrate, then serve until SIGINT/SIGTERM; an embedded PostgreSQL stops with it.

    `workers` > 1 runs that many uvicorn worker processes (decoding is CPU-bound and Python has
    one GIL per process); each has its own pool, in-flight bound and rate limiter, and /metrics
    reports the sum over all of them (prometheus-client's multiprocess mode)."""
    host, port = host or settings.flusso_host, port or settings.flusso_port
    refuse_unsafe_secrets(settings)
    check_ports_free(settings, host, port)
    with database(settings) as dsn:
        settings = _prepare(settings, dsn)
        if workers <= 1:
            _server(settings, dsn, host, port).run()
            return
        from .asgi import RESOLVED_DSN_ENV

        os.environ[RESOLVED_DSN_ENV] = dsn
        os.environ["FLUSSO_SESSION_SECRET"] = session_secret(settings)  # one secret for all workers
        os.environ.update(FLUSSO_HOST=host, FLUSSO_GRPC_PORT=str(settings.flusso_grpc_port))  # --host, --grpc-port
        if settings.flusso_pii_hash_key:
            os.environ["FLUSSO_PII_HASH_KEY"] = reveal(settings.flusso_pii_hash_key)
        os.environ["FLUSSO_ALERT_SECRET_KEY"] = reveal(settings.flusso_alert_secret_key) or ""  # rule signing
        os.environ[MULTIPROC_ENV] = str(_metrics_dir(settings))
        uvicorn.run("flusso_obs.asgi:create", factory=True, host=host, port=port, workers=workers,
                    log_level="info", server_header=False, timeout_graceful_shutdown=settings.flusso_drain_timeout_s,
                    **_proxy_options(settings))


def _metrics_dir(settings: ServerSettings) -> Path:
    """An empty directory of this `serve` for its workers' shared metric files: values of an
    earlier run would otherwise be added to this one's. Folders of `serve` processes that are no
    longer running are removed; a second `serve` on the same data directory keeps its own."""
    parent = Path(settings.flusso_data_dir).resolve() / "metrics"
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in parent.iterdir():
        ours_or_dead = not old.name.isdigit() or int(old.name) == os.getpid() or not process_alive(int(old.name))
        if old.is_dir() and ours_or_dead:
            shutil.rmtree(old, ignore_errors=True)
    folder = parent / str(os.getpid())
    folder.mkdir(mode=0o700)
    return folder



def _wait_ready(url: str, deadline_s: float = 30.0) -> bool:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def demo_command(url: str, key: str, tickets: int, backfill_days: int = 0) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of one demo sender: the key travels in LOG_COLLECTOR_API_KEY, never on
    the command line, where any local user sees it in `ps`."""
    argv = [sys.executable, "-m", "flusso_obs.cli", "demo", "--tickets", str(tickets), "--collector", url, "--quiet",
            "--backfill-days", str(backfill_days)]
    return argv, {**os.environ, "LOG_COLLECTOR_API_KEY": key}


def _send_demo(url: str, creds, tickets: int, done: threading.Event, procs: list, backfill_days: int = 0) -> None:
    try:
        if not _wait_ready(url):
            logger.error("server did not become ready; no demo tickets sent")
            return
        tenants = list(creds.ingest_keys.items())
        running = []
        for i, (tenant, key) in enumerate(tenants):  # one sender per tenant, in parallel
            share = tickets // len(tenants) + (1 if i < tickets % len(tenants) else 0)
            if (share <= 0 and not backfill_days) or done.is_set():
                continue
            argv, env = demo_command(url, key, share, backfill_days)
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            running.append((tenant, proc))
        for tenant, proc in running:
            out, _ = proc.communicate()
            logger.info("demo tenant %s: %s", tenant, out.strip().splitlines()[-1] if out.strip() else "no output")
        _print_banner(url, creds)
    except Exception:  # the server keeps running even if the demo fails
        logger.exception("demo sender failed")


def _print_banner(url: str, creds) -> None:
    print(
        f"\n  flusso-obs is running at {url}\n"
        f"  provider login: {creds.provider_email} / {creds.provider_password}\n"
        f"  client login ({creds.client_id}): {creds.client_email} / {creds.client_password}\n"
        f"  ingest key for {creds.client_id}: {creds.ingest_keys[creds.client_id]}\n"
        f"  Ctrl-C stops everything (PostgreSQL included).\n", flush=True)


def run_quickstart(settings: ServerSettings, *, host: str | None = None, port: int | None = None,
                   demo_tickets: int = 50, backfill_days: int = 30) -> None:
    """Everything `make run` promises: database, migrations, demo accounts, server, demo tickets."""
    host, port = host or settings.flusso_host, port or settings.flusso_port
    refuse_unsafe_secrets(settings)  # as `serve`: a copied .env with a placeholder is as careless here
    check_ports_free(settings, host, port)
    url = f"http://{host}:{port}"
    with database(settings) as dsn:
        settings = _prepare(settings, dsn)
        creds = asyncio.run(ensure_demo_credentials(settings, dsn))
        _print_banner(url, creds)
        done, procs = threading.Event(), []
        sender = threading.Thread(target=_send_demo, args=(url, creds, demo_tickets, done, procs, backfill_days),
                                  daemon=True)
        sender.start()
        try:
            _server(settings, dsn, host, port).run()
        finally:
            done.set()
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
