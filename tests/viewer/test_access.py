"""Login, sessions, CSRF, rate limiting, security headers and tenant scoping."""
from __future__ import annotations

from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.helpers import run_async
from viewer.auth import hash_password, verify_password

from .helpers import login


def test_password_hashing_is_argon2id():
    hashed = hash_password("s3cret")
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "s3cret")
    assert not verify_password(hashed, "wrong")
    assert not verify_password("not-a-hash", "s3cret")


def test_pages_redirect_to_login_and_back(app_client):
    response = app_client.get("/tickets?status=FAILED")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Ftickets%3Fstatus%3DFAILED"
    page = app_client.get(response.headers["location"])
    assert page.status_code == 200
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = app_client.post("/login", data={"email": "provider@example.com", "password": "correct horse battery staple",
                                           "csrf_token": token, "next": "/tickets?status=FAILED"})
    assert done.status_code == 303 and done.headers["location"] == "/tickets?status=FAILED"
    cookie = done.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
    assert app_client.get("/tickets").status_code == 200


def test_login_rejects_bad_password_and_offsite_next(app_client):
    assert login(app_client, "provider@example.com", "nope").status_code == 401
    assert login(app_client, "nobody@example.com").status_code == 401
    page = app_client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = app_client.post("/login", data={"email": "acme@example.com", "password": "correct horse battery staple",
                                           "csrf_token": token, "next": "//evil.example/x"})
    assert done.headers["location"] == "/"


def test_login_requires_csrf_token(app_client):
    app_client.get("/login")
    response = app_client.post("/login", data={"email": "provider@example.com",
                                               "password": "correct horse battery staple", "csrf_token": "forged"})
    assert response.status_code == 400
    assert "flusso_session" not in response.headers.get("set-cookie", "")


def test_logout_needs_csrf_and_ends_the_session(app_client):
    login(app_client, "provider@example.com")
    assert app_client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    page = app_client.get("/tickets")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert app_client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert app_client.get("/tickets").status_code == 303


def test_logout_voids_copies_of_the_session_cookie(app_client):
    login(app_client, "provider@example.com")
    stolen = app_client.cookies.get("flusso_session")
    assert stolen
    page = app_client.get("/tickets")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert app_client.post("/logout", data={"csrf_token": token}).status_code == 303
    app_client.cookies.set("flusso_session", stolen)
    assert app_client.get("/tickets").status_code == 303  # the copy died with the sign-out
    app_client.cookies.clear()
    login(app_client, "provider@example.com")
    assert app_client.get("/tickets").status_code == 200  # a new sign-in works again


def test_tampered_session_cookie_is_refused(app_client):
    login(app_client, "acme@example.com")
    value = app_client.cookies.get("flusso_session")
    app_client.cookies.set("flusso_session", value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert app_client.get("/").status_code == 303


def test_login_attempts_are_rate_limited(loaded_db):
    dsn, _, _ = loaded_db
    settings = ServerSettings(flusso_session_secret="s" * 32, flusso_login_attempts_per_minute=3)
    with TestClient(create_app(settings, dsn), follow_redirects=False) as client:
        codes = [login(client, "provider@example.com", "wrong").status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        assert login(client, "provider@example.com").status_code == 429  # even the right password, for a minute


def test_secure_cookie_setting(loaded_db):
    dsn, _, _ = loaded_db
    settings = ServerSettings(flusso_session_secret="s" * 32, flusso_cookie_secure=True)
    with TestClient(create_app(settings, dsn), follow_redirects=False) as client:
        assert "Secure" in login(client, "provider@example.com").headers["set-cookie"]


def test_security_headers(app_client):
    response = app_client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in response.text  # no inline script anywhere
    assert app_client.get("/docs").status_code == 404


def test_client_sees_only_its_tenant(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    page = app_client.get("/tickets")
    assert page.status_code == 200
    assert "A-1" in page.text and "G-1" not in page.text
    assert 'name="client"' not in page.text  # no client filter for a client
    # asking for another tenant through the filter changes nothing
    assert "G-1" not in app_client.get("/tickets?client=globex").text
    assert app_client.get(f"/tickets/{ids['G-1']}").status_code == 404
    assert app_client.get(f"/tickets/{ids['G-1']}/raw").status_code == 404
    assert app_client.get(f"/api/v1/tickets/{ids['G-1']}").status_code == 404
    assert "G-" not in app_client.get("/tickets/export.csv").text
    assert app_client.get(f"/tickets/{ids['A-1']}").status_code == 200


def test_provider_sees_every_tenant_and_filters_by_client(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "provider@example.com")
    page = app_client.get("/tickets").text
    assert "A-1" in page and "G-1" in page
    only_globex = app_client.get("/tickets?client=globex").text
    assert "G-1" in only_globex and "A-1" not in only_globex
    assert app_client.get(f"/tickets/{ids['G-1']}").status_code == 200
    overview = app_client.get("/").text
    assert 'id="per-client"' in overview and "globex" in overview


def test_row_level_security_holds_without_the_query_filter(loaded_db):
    """Defense in depth: a statement that forgets its tenant filter still sees one tenant only."""

    from collector_api.store.core.db import Scope, create_pool, scoped_transaction

    dsn, _, _ = loaded_db

    async def tenants_seen(scope):
        async with create_pool(dsn, max_size=1) as pool:
            async with scoped_transaction(pool, scope) as conn:
                rows = await (await conn.execute("SELECT DISTINCT client_id FROM workflow_logs")).fetchall()
        return sorted(r["client_id"] for r in rows)

    assert run_async(tenants_seen(Scope.tenant("acme"))) == ["acme"]
    assert run_async(tenants_seen(Scope.provider())) == ["acme", "globex"]


def test_api_key_authentication(app_client, loaded_db):
    _, accounts, ids = loaded_db
    assert app_client.get("/api/v1/tickets").status_code == 401
    assert app_client.get("/api/v1/tickets", headers={"X-API-Key": "fo_" + "x" * 40}).status_code == 401
    wrong_scope = app_client.get("/api/v1/tickets", headers={"X-API-Key": accounts["ingest_key"]})
    assert wrong_scope.status_code == 401 and "read" in wrong_scope.json()["detail"]
    body = app_client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {accounts['read_key']}"}).json()
    assert {t["client_id"] for t in body["tickets"]} == {"acme"}
    r = app_client.get(f"/api/v1/tickets/{ids['G-1']}", headers={"X-API-Key": accounts["read_key"]})
    assert r.status_code == 404
    stats = app_client.get("/api/v1/stats?client=globex", headers={"X-API-Key": accounts["read_key"]}).json()
    assert "per_client" in stats and stats["per_client"] == []
    assert stats["totals"]["tickets"] == 5  # acme's within 30 days, whatever `client` says


def test_logout_without_a_session_goes_to_the_login_page(app_client):
    response = app_client.post("/logout", data={"csrf_token": "x"})
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_collector_paths_keep_json_errors(app_client):
    response = app_client.get("/api/v1/stats")
    assert response.status_code == 401 and response.headers["content-type"].startswith("application/json")
    assert response.headers["www-authenticate"].startswith("Bearer")
