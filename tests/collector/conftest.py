import pytest
from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.helpers import make_key


@pytest.fixture()
def settings():
    return ServerSettings(_env_file=None)


@pytest.fixture()
def client(db_dsn, settings):
    with TestClient(create_app(settings, db_dsn)) as c:
        yield c


@pytest.fixture()
def acme_key(db_dsn):
    return make_key(db_dsn, "acme")
