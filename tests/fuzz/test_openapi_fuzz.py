"""Fuzzing: schemathesis generates requests from the app's own /openapi.json (viewer API
and collector routes) and sends them to a live server on 127.0.0.1 with real PostgreSQL, a real
ingest key, read key and provider session. Every answer must be < 500 and match the schema
(status code, content type, body). A stateful run follows the schema's links.

Short mode (`make test`): FLUSSO_FUZZ_EXAMPLES (default 10) cases per operation and auth.
Long mode: bench/fuzz_api.py (>= 10,000 cases, figures in docs/benchmarks.md)."""
from __future__ import annotations

import os

import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("FLUSSO_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
COUNT_FILE = os.environ.get("FLUSSO_FUZZ_COUNT_FILE")  # the long-mode script counts cases here


def _app_openapi() -> dict:
    """The app's own OpenAPI document, as /openapi.json serves it (building the app connects to
    nothing; the requests go to the live server). Loaded at import: schemathesis's lazy fixture
    loader does not run under this pytest."""
    from config.server import ServerSettings
    from flusso_obs.server import create_app

    app = create_app(ServerSettings(_env_file=None, flusso_session_secret="o" * 40), "postgresql://unused@/x")
    return app.openapi()


schema = schemathesis.openapi.from_dict(_app_openapi())


def _credentials(case, creds, variant: int) -> tuple[dict, dict]:
    """(headers, cookies): the collector's ingest routes get the ingest key; the viewer API a read
    key or the provider's session, by `variant`; /metrics is loopback (no credentials needed)."""
    path = case.operation.path
    if path in ("/v1/logs", "/api/v1/logs"):
        return {"X-API-Key": creds.ingest}, {}
    if path.startswith("/api/v1/"):
        return ({"X-API-Key": creds.read}, {}) if variant == 0 else ({}, {"flusso_session": creds.session_cookie})
    return {}, {}


def _note_case() -> None:
    if COUNT_FILE:
        with open(COUNT_FILE, "a", encoding="utf-8") as handle:
            handle.write("1\n")


def _run(case, fuzz_server, variant: int) -> None:
    server, creds = fuzz_server
    headers, cookies = _credentials(case, creds, variant)
    response = case.call(base_url=server.url, headers=headers, cookies=cookies, timeout=30)
    _note_case()
    case.validate_response(response, checks=CHECKS)


FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_with_keys(case, fuzz_server):
    """Collector routes with the ingest key, the viewer API with a read-scope key."""
    _run(case, fuzz_server, 0)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_with_a_provider_session(case, fuzz_server):
    _run(case, fuzz_server, 1)


def test_stateful_ingest_then_read(fuzz_server):
    """Sequences along the schema's links (a stored log -> its ticket; a ticket page -> its first
    ticket), with the same checks on every step."""
    from hypothesis import settings as hsettings

    server, creds = fuzz_server

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            headers, cookies = _credentials(case, creds, 0)
            return {"base_url": server.url, "headers": headers, "cookies": cookies, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            _note_case()
            case.validate_response(response, checks=CHECKS)

    Machine.run(settings=hsettings(max_examples=max(5, EXAMPLES // 2), stateful_step_count=4, deadline=None,
                                   derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
