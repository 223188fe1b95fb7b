"""A tenant sees a provider's review as by "provider reviewer", never with the provider's email
(page, JSON API); providers see every author; a tenant's own users and keys stay named. The
review size rules are the ones documented: FLUSSO_MAX_FORM_BYTES (413, form and API) and the
note/draft character limits (400 naming the field), and the documented maxima fit."""
from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from collector_api.contract.review_text import MAX_DRAFT_CHARS, MAX_NOTE_CHARS, PROVIDER_REVIEWER
from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.helpers import make_key as _key

from .helpers import login
from .helpers import post_review as _review

PROVIDER = "provider@example.com"


def client_for(dsn: str) -> TestClient:
    settings = ServerSettings(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32,
                              flusso_login_attempts_per_minute=50)
    return TestClient(create_app(settings, dsn), follow_redirects=False)


def test_a_tenant_sees_a_providers_review_by_role_never_by_email(loaded_db):
    dsn, _, ids = loaded_db
    ticket = ids["A-2"]
    with client_for(dsn) as provider:
        login(provider, PROVIDER)
        assert _review(provider, ticket, note="checked by the provider").status_code == 303
    with client_for(dsn) as acme:
        login(acme, "acme@example.com")
        assert _review(acme, ticket, verdict="needs_work", note="our own note").status_code == 303
        page = acme.get(f"/tickets/{ticket}").text
        api = acme.get(f"/api/v1/tickets/{ticket}/reviews").json()
    assert PROVIDER not in page and PROVIDER not in str(api)
    assert PROVIDER_REVIEWER in page
    assert [(r["author"], r["author_role"]) for r in api["reviews"]] == [
        ("acme@example.com", "client"), (PROVIDER_REVIEWER, "provider")]
    key = _key(dsn, "acme", "read")
    with client_for(dsn) as machine:
        by_key = machine.get(f"/api/v1/tickets/{ticket}/reviews", headers={"X-API-Key": key}).json()
    assert PROVIDER not in str(by_key) and by_key["reviews"][1]["author"] == PROVIDER_REVIEWER
    with client_for(dsn) as provider:
        login(provider, PROVIDER)
        seen = provider.get(f"/api/v1/tickets/{ticket}/reviews").json()
        assert PROVIDER in provider.get(f"/tickets/{ticket}").text
    assert [r["author"] for r in seen["reviews"]] == ["acme@example.com", PROVIDER]
    with psycopg.connect(dsn) as conn:  # stored as written: who did it stays on record
        assert conn.execute("SELECT author, author_role FROM ticket_reviews ORDER BY id").fetchall() == [
            (PROVIDER, "provider"), ("acme@example.com", "client")]


def test_review_size_rules_are_the_documented_ones(loaded_db):
    dsn, _, ids = loaded_db
    ticket = ids["A-1"]
    review_key = _key(dsn, "acme", "review")
    api = f"/api/v1/tickets/{ticket}/reviews"
    with client_for(dsn) as client:
        login(client, PROVIDER)
        # The documented maxima fit under the default FLUSSO_MAX_FORM_BYTES (64 KiB).
        full = _review(client, ticket, note="n" * MAX_NOTE_CHARS, corrected_draft="d" * MAX_DRAFT_CHARS)
        assert full.status_code == 303
        over = _review(client, ticket, note="n" * (MAX_NOTE_CHARS + 1))
        assert over.status_code == 400 and "note" in over.text
        too_big = _review(client, ticket, note="x" * 70_000)
        assert too_big.status_code == 413 and "FLUSSO_MAX_FORM_BYTES" in too_big.text
        headers = {"X-API-Key": review_key, "Content-Type": "application/json"}
        big_json = client.post(api, content=b'{"verdict":"correct","note":"' + b"x" * 70_000 + b'"}', headers=headers)
        assert big_json.status_code == 413
        draft_over = client.post(api, json={"verdict": "correct", "corrected_draft": "d" * (MAX_DRAFT_CHARS + 1)},
                                 headers={"X-API-Key": review_key})
        assert draft_over.status_code == 400 and "corrected_draft" in draft_over.json()["detail"]
