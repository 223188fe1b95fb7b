"""Usage and comparison in the viewer: the usage report (page, JSON, CSV), comparing two tickets, the critical
path on the waterfall and the overview."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from .helpers import ARTIFACTS, browser_login, login

MONTH = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m")  # the month of A-1 and G-1
WIDE = "start=2020-01-01&end=2029-12-31"


def test_usage_api_is_own_tenant_only_for_a_read_key(app_client, loaded_db):
    _, accounts, _ = loaded_db
    key = {"X-API-Key": accounts["read_key"]}
    body = app_client.get(f"/api/v1/usage?month={MONTH}&client=globex", headers=key).json()  # asks for another tenant
    assert [c["client_id"] for c in body["clients"]] == ["acme"]
    assert body["month"] == MONTH and body["start"].startswith(MONTH)
    ranged = app_client.get("/api/v1/usage?start=2020-01-01&end=2029-12-31", headers=key).json()
    assert ranged["totals"]["tickets"] == 6 and ranged["month"] is None  # A-OLD too
    text = app_client.get("/api/v1/usage.csv?start=2020-01-01&end=2029-12-31", headers=key)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [(r["client_id"], r["model"], r["tickets"]) for r in rows] == [("acme", "*", "6")]
    # the CSV's recontact figures are the JSON report's, per tenant
    want = ranged["clients"][0]["recontact"]
    rate = "" if want["rate"] is None else f"{want['rate']:.6f}"
    assert (rows[0]["resolved_in_sessions"], rows[0]["recontacted"], rows[0]["recontact_rate"],
            rows[0]["recontact_days"]) == (str(want["resolved"]), str(want["recontacted"]), rate,
                                           str(ranged["recontact_days"]))
    assert app_client.get("/api/v1/usage").status_code == 401


@pytest.mark.parametrize("query, named", [
    ("month=2026-13", "2026-13"), ("month=11-2026", "11-2026"), ("month=2026-11-01", "2026-11-01"),
    ("month=2026-11&start=2026-11-01&end=2026-11-30", "month"), ("start=2026-11-01", "end"),
    ("start=yesterday&end=2026-11-30", "start"), ("month=%00", "month")])
def test_a_bad_period_is_a_400_naming_it(app_client, loaded_db, query, named):
    _, accounts, _ = loaded_db
    for path in ("/api/v1/usage", "/api/v1/usage.csv"):
        r = app_client.get(f"{path}?{query}", headers={"X-API-Key": accounts["read_key"]})
        assert r.status_code == 400, (path, query, r.text)
        assert named in r.json()["detail"]
    login(app_client, "provider@example.com")
    page = app_client.get(f"/usage?{query}")
    assert page.status_code == 400 and "month" in page.text or named in page.text


def test_usage_page_provider_sees_all_a_client_its_own(app_client):
    login(app_client, "provider@example.com")
    page = app_client.get("/usage?start=2020-01-01&end=2029-12-31")
    assert page.status_code == 200
    assert 'data-client="acme"' in page.text and 'data-client="globex"' in page.text
    assert 'href="/usage.csv?start=2020-01-01&amp;end=2029-12-31"' in page.text
    assert app_client.get("/usage.csv?start=2020-01-01&end=2029-12-31").text.count("\r\n") == 3  # header + 2
    app_client.post("/logout", data={"csrf_token": ""})
    app_client.cookies.clear()
    login(app_client, "globex@example.com")
    page = app_client.get("/usage?start=2020-01-01&end=2029-12-31&client=acme")
    assert 'data-client="globex"' in page.text and 'data-client="acme"' not in page.text


def test_compare_two_tickets_and_its_refusals(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    page = app_client.get(f"/compare?a={ids['A-1']}&b={ids['A-2']}")
    assert page.status_code == 200
    assert "A-1" in page.text and "A-2" in page.text
    assert 'id="waterfall-a"' in page.text and 'id="waterfall-b"' in page.text
    assert page.text.count('data-critical="true"') >= 4  # root and planner on each side
    assert 'data-metric="overall_confidence"' in page.text and 'data-node="planner"' in page.text
    picked = app_client.get(f"/compare?id={ids['A-1']}&id={ids['A-3']}")
    assert picked.status_code == 200 and "A-3" in picked.text
    for query, status in ((f"a={ids['A-1']}&b={ids['A-1']}", 400), (f"a={ids['A-1']}&b=abc", 400),
                          (f"a=1e3&b={ids['A-1']}", 400), ("a=²&b=1", 400), (f"a={ids['A-1']}", 400),
                          (f"id={ids['A-1']}&id={ids['A-2']}&id={ids['A-3']}", 400), ("", 400),
                          (f"a={ids['A-1']}&b={ids['G-1']}", 404), (f"a={ids['G-1']}&b={ids['A-1']}", 404),
                          (f"a={ids['A-1']}&b=999999999", 404)):
        r = app_client.get(f"/compare?{query}")
        assert r.status_code == status, (query, r.status_code)
    # The search page lets one pick two.
    search = app_client.get("/tickets").text
    assert 'form="compare-form"' in search and 'action="/compare"' in search


def test_ticket_page_marks_the_critical_path_and_overview_ranks_nodes(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    page = app_client.get(f"/tickets/{ids['A-1']}").text
    assert "critical path: the chain of spans" in page and 'data-critical="true"' in page
    api = app_client.get(f"/api/v1/tickets/{ids['A-1']}").json()
    assert api["ticket"]["critical_path"]["nodes"] == ["planner"]
    overview = app_client.get("/").text
    assert 'id="critical-nodes"' in overview and 'data-node="planner"' in overview


@pytest.mark.browser
def test_browser_compares_two_tickets_and_sees_the_critical_path(viewer_page, live_server):
    browser_login(viewer_page, live_server, "acme@example.com")
    viewer_page.goto(f"{live_server}/tickets")
    boxes = viewer_page.locator("input.pick")
    boxes.nth(0).check()
    boxes.nth(1).check()
    viewer_page.click("#compare-button")
    viewer_page.wait_for_url("**/compare?**")
    assert viewer_page.locator("section.waterfall").count() == 2
    for side in ("#waterfall-a", "#waterfall-b"):
        assert viewer_page.locator(f"{side} .wf-row.critical").count() >= 2
        assert "critical path" in viewer_page.locator(f"{side} .wf-legend").inner_text()
    # Both waterfalls share one time scale: the same tick labels.
    ticks = viewer_page.evaluate("""() => [...document.querySelectorAll('section.waterfall .wf-axis .ticks')]
        .map(t => t.innerText)""")
    assert len(ticks) == 2 and ticks[0] == ticks[1]
    color = viewer_page.evaluate("""() => getComputedStyle(document.querySelector(
        '#waterfall-a .wf-row.critical .wf-bar rect')).fill""")
    assert color == "rgb(217, 130, 43)"
    ARTIFACTS.mkdir(exist_ok=True)
    viewer_page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    assert viewer_page.console_errors == []
