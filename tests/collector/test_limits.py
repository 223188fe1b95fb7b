"""Backpressure: bounded requests in flight (503) and the per-tenant rate limit (429)."""

from fastapi.testclient import TestClient

from collector_api.http.admission import CollectorState, TenantRateLimiter
from collector_api.http.errors import Unavailable
from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.collector.helpers import make_log, make_record, make_request

PB = {"Content-Type": "application/x-protobuf"}


def test_tenant_rate_limit_answers_429_with_retry_after(db_dsn, acme_key):
    settings = ServerSettings(_env_file=None, flusso_tenant_rate_limit_per_s=0.5, flusso_retry_after_seconds=3)
    body = make_request(make_record(make_log())).SerializeToString()
    with TestClient(create_app(settings, db_dsn)) as c:
        statuses = [c.post("/v1/logs", content=body, headers={**PB, "X-API-Key": acme_key}) for _ in range(3)]
    assert [r.status_code for r in statuses][:1] == [200]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "3"


def test_rate_limiter_is_per_tenant():
    limiter = TenantRateLimiter(rate=1)
    limiter.check("a", 1)
    limiter.check("a", 1)  # burst of 2
    limiter.check("b", 1)
    try:
        limiter.check("a", 1)
        raise AssertionError("expected 429")
    except Exception as exc:
        assert exc.status == 429


def test_requests_beyond_the_inflight_bound_get_503():
    state = CollectorState(settings=ServerSettings(_env_file=None, flusso_max_inflight_requests=2), pool=None)
    state.admit()
    state.admit()
    try:
        state.admit()
        raise AssertionError("expected 503")
    except Unavailable as exc:
        assert exc.status == 503 and exc.retry_after == 2
    state.release()
    state.admit()


def test_inflight_bound_over_http(db_dsn, acme_key):
    """With the bound at 0 free slots every ingest request is refused with 503 + Retry-After."""
    settings = ServerSettings(_env_file=None, flusso_max_inflight_requests=1)
    app = create_app(settings, db_dsn)
    with TestClient(app) as c:
        app.state.collector.inflight = 1  # one slow request holds the only slot
        r = c.post("/v1/logs", content=make_request().SerializeToString(), headers={**PB, "X-API-Key": acme_key})
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
