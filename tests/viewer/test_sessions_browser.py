"""Real headless Chromium: sessions list -> one session -> a ticket -> back, as a client user;
the overview's recontact number and chart. Screenshots in /tmp/shots-sessions (and test-artifacts)."""
from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import ARTIFACTS, browser_login

pytestmark = pytest.mark.browser
SHOTS = Path("/tmp/shots-sessions")


def _shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    for folder in (SHOTS, ARTIFACTS):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_sessions_list_to_session_to_ticket_and_back(viewer_page, live_server):
    browser_login(viewer_page, live_server, "acme@example.com")
    viewer_page.click("nav a[href='/sessions']")
    viewer_page.wait_for_load_state("networkidle")
    rows = viewer_page.locator("#session-table tbody tr")
    assert rows.count() == 1  # acme's one requester; globex's is not shown
    assert "globex" not in viewer_page.content()
    _shot(viewer_page, "sessions-list")
    key = rows.nth(0).get_attribute("data-session")
    rows.nth(0).locator("a.session-key").click()
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{live_server}/sessions/{key}"
    assert viewer_page.text_content("#session-key") == key
    timeline = viewer_page.locator("#session-timeline tbody tr")
    assert timeline.count() == 6 and viewer_page.text_content("#session-tickets") == "6"
    _shot(viewer_page, "session-timeline")
    timeline.nth(2).locator("a.ticket-link").click()
    viewer_page.wait_for_load_state("networkidle")
    assert "/tickets/" in viewer_page.url
    link = viewer_page.locator("#session-link a")
    assert link.text_content() == "this customer's other tickets (5)"
    _shot(viewer_page, "ticket-with-session-link")
    link.click()
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{live_server}/sessions/{key}"
    viewer_page.click("#back-to-sessions")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{live_server}/sessions"
    viewer_page.go_back()
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.url == f"{live_server}/sessions/{key}"
    assert not viewer_page.console_errors, viewer_page.console_errors


def test_the_overview_shows_the_recontact_rate_and_its_chart(viewer_page, live_server):
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-recontact'))")
    plotted = viewer_page.evaluate("""() => {
        const c = Chart.getChart(document.getElementById('chart-recontact'));
        return {labels: c.data.labels, data: c.data.datasets[0].data};
    }""")
    stats = viewer_page.request.get(f"{live_server}/api/v1/stats").json()["recontact"]
    assert plotted["labels"] == [d["day"] for d in stats["per_day"]]
    assert plotted["data"] == [d["rate"] for d in stats["per_day"]]
    assert viewer_page.text_content("[data-stat=recontact_rate]").startswith("60")
    viewer_page.locator("#chart-recontact").scroll_into_view_if_needed()
    _shot(viewer_page, "overview-recontact")
    assert not viewer_page.console_errors, viewer_page.console_errors
