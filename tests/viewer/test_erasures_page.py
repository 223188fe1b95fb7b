"""The provider's erasure log page (/erasures) and its JSON: every tenant's erasures and retention
runs, counts only; a client user or a read key gets 404; the page in Chromium."""
from __future__ import annotations

import httpx

from collector_api.contract.receipts import asked_digest
from collector_api.store.core.db import create_pool
from collector_api.store.erasure.run import run_erasure

from .helpers import ARTIFACTS, browser_login, login, provider_cookie, run_async

NO_PAGE = "there is no page at this address"


def erase(dsn: str, client: str, request_id: str, tickets: list[str]) -> dict:
    asked = {"ticket_ids": tickets, "trace_ids": [], "tokens": ["[email:0123456789ab]"]}

    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            return await run_erasure(pool, client, request_id, asked, asked_digest(asked), "key-test")
    return run_async(go())


def test_provider_sees_every_tenants_erasures_and_others_get_404(loaded_db, app_client):
    dsn, accounts, _ = loaded_db
    erase(dsn, "acme", "gdpr-acme-1", ["A-1", "A-2"])
    erase(dsn, "globex", "gdpr-globex-1", ["G-1"])
    assert login(app_client, "provider@example.com").status_code == 303
    page = app_client.get("/erasures")
    assert page.status_code == 200 and "gdpr-acme-1" in page.text and "gdpr-globex-1" in page.text
    assert "[email:0123456789ab]" not in page.text  # what was asked is counted, not listed
    data = app_client.get("/api/v1/erasures", params={"client": "acme"}).json()
    assert [e["request_id"] for e in data["erasures"]] == ["gdpr-acme-1"]
    entry = data["erasures"][0]
    assert entry["counts"]["workflow_logs"] == 2 and entry["asked"] == {"ticket_ids": 2, "trace_ids": 0, "tokens": 1}
    bad = app_client.get("/api/v1/erasures", params={"client": "<script>\x00"})
    assert bad.status_code == 400 and "client" in bad.json()["detail"]
    app_client.cookies.clear()
    assert login(app_client, "acme@example.com").status_code == 303
    for path in ("/erasures", "/api/v1/erasures"):
        r = app_client.get(path)
        assert r.status_code == 404 and NO_PAGE in r.text, (path, r.status_code)
    app_client.cookies.clear()
    r = app_client.get("/api/v1/erasures", headers={"X-API-Key": accounts["read_key"]})
    assert r.status_code == 404


def test_erasures_page_in_the_browser(module_db, live_server, viewer_page):
    dsn = module_db[0]
    erase(dsn, "acme", "gdpr-browser-1", ["A-3"])
    assert httpx.get(f"{live_server}/api/v1/erasures", headers={"Cookie": provider_cookie(live_server)}).json()[
        "erasures"][0]["request_id"] == "gdpr-browser-1"
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.click("nav >> text=Erasures")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{live_server}/erasures"
    row = viewer_page.locator("tr[data-request=gdpr-browser-1]")
    assert row.locator("[data-field=erased]").text_content() == "1"
    assert row.locator("[data-field=status]").text_content().strip() == "done"
    assert "workflow_logs 1" in row.locator("[data-field=counts]").text_content()
    ARTIFACTS.mkdir(exist_ok=True)
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-erasures.png"), full_page=True)
    assert not viewer_page.console_errors, viewer_page.console_errors
