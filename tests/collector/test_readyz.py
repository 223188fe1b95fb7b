"""/readyz tells anonymous callers "database unavailable", never the database's
own error text (host, role, database names); the details go to the log."""
import logging

from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app


def test_readyz_hides_database_errors(db_dsn, caplog):
    secret_name = "no_such_db_hunter2"
    bad = db_dsn.replace(db_dsn.rsplit("/", 1)[1].split("?")[0], secret_name)
    assert secret_name in bad
    app = create_app(ServerSettings(_env_file=None, flusso_session_secret="r" * 40), bad)
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.json() == {"status": "unavailable", "reason": "database unavailable"}
    assert secret_name not in r.text and "flusso_owner" not in r.text
    assert secret_name in caplog.text  # the operator still sees why
