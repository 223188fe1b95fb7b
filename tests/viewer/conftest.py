"""Viewer fixtures: a loaded database, an in-process client, and a real server for the browser."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app

from .helpers import PASSWORD, create_accounts, standard_logs, store_logs


@pytest.fixture()
def loaded_db(db_dsn):
    """(dsn, accounts, {ticket_id: log id}) with the standard data set stored."""
    accounts = create_accounts(db_dsn)
    docs = standard_logs()
    ids = store_logs(db_dsn, docs)
    return db_dsn, accounts, {d["ticket_info"]["ticket_id"]: i for d, i in zip(docs, ids)}


@pytest.fixture()
def app_client(loaded_db):
    dsn, _, _ = loaded_db
    settings = ServerSettings(flusso_session_secret="test-secret-" + "x" * 20, flusso_login_attempts_per_minute=50)
    with TestClient(create_app(settings, dsn), follow_redirects=False) as client:
        yield client


def login(client: TestClient, email: str, password: str = PASSWORD):
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, "next": "/"})
