"""Viewer fixtures: a loaded database, an in-process client, and a real server for the browser."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app

from .helpers import ARTIFACTS, create_accounts, standard_logs, store_logs


@pytest.fixture()
def loaded_db(db_dsn):
    """(dsn, accounts, {ticket_id: log id}) with the standard data set stored."""
    accounts = create_accounts(db_dsn)
    docs = standard_logs()
    ids = store_logs(db_dsn, docs)
    return db_dsn, accounts, {d["ticket_info"]["ticket_id"]: i for d, i in zip(docs, ids, strict=True)}


@pytest.fixture()
def app_client(loaded_db):
    dsn, _, _ = loaded_db
    settings = ServerSettings(flusso_session_secret="test-secret-" + "x" * 20, flusso_login_attempts_per_minute=50)
    with TestClient(create_app(settings, dsn), follow_redirects=False) as client:
        yield client


# --- browser tests: a real uvicorn server on loopback and Debian's headless Chromium --------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def module_db(module_db_dsn):
    """A migrated database shared by one module's browser tests, loaded with the standard data set."""
    accounts = create_accounts(module_db_dsn)
    docs = standard_logs()
    ids = store_logs(module_db_dsn, docs)
    return module_db_dsn, accounts, {d["ticket_info"]["ticket_id"]: i for d, i in zip(docs, ids, strict=True)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(module_db):
    """Base URL of the app served by uvicorn in a thread on 127.0.0.1."""
    import uvicorn

    dsn = module_db[0]
    settings = ServerSettings(flusso_session_secret="browser-secret-" + "y" * 20, flusso_login_attempts_per_minute=100)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, dsn), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def viewer_browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):  # CI installs it: a missing browser there is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def viewer_page(viewer_browser):
    ARTIFACTS.mkdir(exist_ok=True)
    context = viewer_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.console_errors = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
    yield page
    context.close()
