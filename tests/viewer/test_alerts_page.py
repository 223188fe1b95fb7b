"""The alerts page: provider only, CSRF, field-named errors, the secret shown once,
markup in a rule's name escaped; and the same in real headless Chromium."""
from __future__ import annotations

import psycopg
import pytest

from .helpers import ARTIFACTS, browser_login, login


def csrf_of(html: str) -> str:
    return html.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


FORM = {"name": "acme failing", "metric": "failure_rate", "op": ">", "threshold": "0.3", "window": "15m",
        "client": "acme", "webhook": "https://hooks.example.com/x", "min_tickets": "3"}


def test_rules_are_created_and_deleted_by_the_provider_only(app_client, loaded_db):
    login(app_client, "acme@example.com")
    assert app_client.get("/alerts").status_code == 404
    assert app_client.post("/alerts", data=FORM).status_code == 404
    app_client.post("/logout", data={"csrf_token": csrf_of(app_client.get("/").text)})
    login(app_client, "provider@example.com")
    page = app_client.get("/alerts")
    assert page.status_code == 200 and "Webhooks are off" in page.text
    assert app_client.post("/alerts", data=FORM).status_code == 400  # no CSRF token
    token = csrf_of(page.text)
    bad = app_client.post("/alerts", data={**FORM, "window": "2m", "csrf_token": token})
    assert bad.status_code == 400 and "window: must be between 5m and 7d" in bad.text
    assert 'value="acme failing"' in bad.text  # the form keeps what was typed
    created = app_client.post("/alerts", data={**FORM, "name": "<script>x()</script>", "csrf_token": token})
    assert created.status_code == 201
    secret = created.text.split('<code id="secret">', 1)[1].split("<", 1)[0]
    assert secret.startswith("whsec_")
    assert "<script>x()" not in created.text and "&lt;script&gt;x()" in created.text
    again = app_client.get("/alerts")
    assert secret not in again.text and "failure_rate &gt; 0.3" in again.text
    with psycopg.connect(loaded_db[0]) as conn:
        rule_id = conn.execute("SELECT id FROM alert_rules").fetchone()[0]
    assert app_client.post(f"/alerts/{rule_id}/delete", data={}).status_code == 400
    gone = app_client.post(f"/alerts/{rule_id}/delete", data={"csrf_token": token})
    assert gone.status_code == 303
    assert app_client.post(f"/alerts/{rule_id}/delete", data={"csrf_token": token}).status_code == 404


@pytest.mark.browser
def test_browser_creates_a_rule_sees_the_secret_once_and_deletes_it(viewer_page, live_server):
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.click("nav a[href='/alerts']")
    viewer_page.wait_for_load_state("networkidle")
    viewer_page.fill("input[name=name]", "globex slow")
    viewer_page.select_option("select[name=metric]", "p95_execution_s")
    viewer_page.select_option("select[name=op]", ">=")
    viewer_page.fill("input[name=threshold]", "30")
    viewer_page.fill("input[name=window]", "1h")
    viewer_page.fill("input[name=webhook]", "ftp://nope")
    viewer_page.click("#new-rule button[type=submit]")
    viewer_page.wait_for_load_state("networkidle")
    assert "webhook: expected an http:// or https:// URL" in viewer_page.text_content("#form-error")
    viewer_page.fill("input[name=webhook]", "https://hooks.example.com/slow")
    viewer_page.check("input[name=slack]")
    viewer_page.click("#new-rule button[type=submit]")
    viewer_page.wait_for_load_state("networkidle")
    secret = viewer_page.text_content("#secret")
    assert secret.startswith("whsec_")
    row = viewer_page.locator("#rules-table tbody tr[data-rule]")
    assert row.count() == 1 and "p95_execution_s >= 30" in row.text_content() and "(Slack)" in row.text_content()
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-alerts.png"), full_page=True)
    viewer_page.goto(f"{live_server}/alerts")
    assert secret not in viewer_page.content()
    viewer_page.click("#rules-table button[data-action=delete]")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{live_server}/alerts"
    assert viewer_page.locator("#rules-table tbody tr[data-rule]").count() == 0
    # the one error is the invalid form's own 400 answer; no CSP refusal, no script error
    assert viewer_page.console_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"], viewer_page.console_errors
