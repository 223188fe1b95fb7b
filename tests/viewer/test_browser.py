"""Real headless Chromium against a real server: what a person sees and clicks."""
from __future__ import annotations

import math

import pytest

from .helpers import ARTIFACTS, browser_login, make_log, store_logs

pytestmark = pytest.mark.browser


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_provider_overview_charts_plot_the_stats(viewer_page, live_server):
    browser_login(viewer_page, live_server, "provider@example.com")
    assert viewer_page.url == f"{live_server}/"
    viewer_page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-cost'))")
    plotted = viewer_page.evaluate("""() => Object.fromEntries(
        ['chart-status', 'chart-quality', 'chart-duration', 'chart-nodes', 'chart-cost'].map(id => {
            const chart = Chart.getChart(document.getElementById(id));
            return [id, {labels: chart.data.labels, data: chart.data.datasets.map(d => d.data)}];
        }))""")
    stats = viewer_page.request.get(f"{live_server}/api/v1/stats").json()
    days = [d["day"] for d in stats["per_day"]]
    assert plotted["chart-status"]["labels"] == days
    statuses = ("success", "partial", "failed")
    assert plotted["chart-status"]["data"] == [[d[k] for d in stats["per_day"]] for k in statuses]
    for series, key in zip(plotted["chart-quality"]["data"], ("avg_confidence", "avg_hallucination_risk"), strict=True):
        assert all(_close(a, d[key]) for a, d in zip(series, stats["per_day"], strict=True))
    assert plotted["chart-duration"]["data"] == [[b["tickets"] for b in stats["duration_histogram"]]]
    assert plotted["chart-nodes"]["labels"] == [n["node"] for n in stats["node_durations"]]
    nodes = zip(plotted["chart-nodes"]["data"][0], stats["node_durations"], strict=True)
    assert all(_close(a, n["avg_ms"]) for a, n in nodes)
    costs = zip(plotted["chart-cost"]["data"][0], stats["per_day"], strict=True)
    assert all(_close(a, d["cost_usd"]) for a, d in costs)
    assert viewer_page.text_content("[data-stat=tickets]") == str(stats["totals"]["tickets"])
    assert viewer_page.locator("#per-client tbody tr").count() == 2
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-overview.png"), full_page=True)
    csp = [e for e in viewer_page.console_errors if "Content Security Policy" in e or "Refused" in e]
    assert not csp, viewer_page.console_errors
    assert not viewer_page.console_errors, viewer_page.console_errors


def test_filters_narrow_the_list_and_the_url_keeps_them(viewer_page, live_server):
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.goto(f"{live_server}/tickets")
    assert viewer_page.locator("#ticket-table tbody tr").count() == 9
    viewer_page.select_option("select[name=status]", "FAILED")
    viewer_page.select_option("select[name=client]", "acme")
    viewer_page.click("#apply-filters")
    viewer_page.wait_for_load_state("networkidle")
    assert "status=FAILED" in viewer_page.url and "client=acme" in viewer_page.url
    assert "min_confidence=" not in viewer_page.url  # empty fields stay out of shared links
    assert viewer_page.locator("#ticket-table tbody tr").count() == 1
    assert viewer_page.text_content("#result-count") == "1"
    shared = viewer_page.url
    viewer_page.goto(f"{live_server}/")
    viewer_page.goto(shared)
    assert viewer_page.locator("#ticket-table tbody tr").count() == 1
    assert viewer_page.input_value("select[name=status]") == "FAILED"
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-tickets-filtered.png"), full_page=True)
    viewer_page.goto(f"{live_server}/tickets?min_confidence=high")
    assert "min_confidence" in viewer_page.text_content("#error-message")


def test_ticket_opens_with_waterfall_and_react(viewer_page, live_server):
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.goto(f"{live_server}/tickets?ticket=A-2")
    viewer_page.click("#ticket-table tbody tr >> nth=0 >> td.ticket-id a")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.text_content("#ticket-id") == "A-2"
    rows = viewer_page.locator("#waterfall .wf-row")
    assert rows.count() == 2
    assert viewer_page.locator("#waterfall .wf-row.depth-1").count() == 1
    rows.nth(0).locator("summary").click()
    assert viewer_page.locator("#waterfall .wf-row >> nth=0 >> dl").is_visible()
    assert "gen_ai.operation.name" in rows.nth(0).text_content()
    assert "Look up the order" in viewer_page.text_content("#react")
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-ticket.png"), full_page=True)


def test_client_user_sees_only_its_tickets(viewer_page, live_server, module_db):
    _, _, ids = module_db
    browser_login(viewer_page, live_server, "acme@example.com")
    viewer_page.goto(f"{live_server}/tickets")
    tickets = viewer_page.locator("#ticket-table td.ticket-id a").all_text_contents()
    assert tickets and all(t.startswith("A-") for t in tickets)
    assert viewer_page.locator("select[name=client]").count() == 0
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-client-tickets.png"), full_page=True)
    response = viewer_page.goto(f"{live_server}/tickets/{ids['G-1']}")
    assert response.status == 404
    assert "G-1" not in viewer_page.content()
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-client-404.png"))


def test_markup_in_a_log_runs_no_script(viewer_page, live_server, module_db):
    dsn = module_db[0]
    doc = make_log("acme", '<script>alert("ticket")</script>', days_ago=0.5)
    doc["trace"]["react"]["iterations"][0].update(
        thought='<img src=x onerror="window.__xss=1;alert(1)">', observation="{{ 7*7 }} {% raw %}",
        action='<a href="javascript:alert(2)">go</a>')
    doc["trace"]["output"]["draft"] = '</pre><script>alert(3)</script><iframe src="javascript:alert(4)"></iframe>'
    doc["trace"]["spans"][0]["name"] = '<svg onload="alert(5)">'
    doc["trace"]["spans"][0]["attributes"] = {"x": '"><img src=x onerror=alert(6)>'}
    doc["trace"]["evidence"]["resolution"] = "javascript:alert(7)"
    [log_id] = store_logs(dsn, [doc])
    browser_login(viewer_page, live_server, "acme@example.com")
    viewer_page.goto(f"{live_server}/tickets")
    viewer_page.goto(f"{live_server}/tickets/{log_id}")
    viewer_page.locator("#waterfall .wf-row >> nth=0 >> summary").click()
    viewer_page.locator("#raw summary").click()
    viewer_page.wait_for_timeout(300)
    assert viewer_page.dialogs == []
    assert viewer_page.evaluate("() => window.__xss") is None
    injected = "#react img, #draft script, #draft iframe, #waterfall svg[onload], #react a"
    assert viewer_page.locator(injected).count() == 0
    assert "{{ 7*7 }}" in viewer_page.text_content("#react")
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-markup.png"), full_page=True)


def test_api_docs_run_from_vendored_assets(viewer_page, live_server):
    browser_login(viewer_page, live_server, "provider@example.com")
    requested = []
    viewer_page.on("request", lambda r: requested.append(r.url))
    viewer_page.goto(f"{live_server}/api/docs")
    viewer_page.wait_for_selector(".swagger-ui .opblock", timeout=15000)
    paths = viewer_page.locator(".opblock-summary-path").all_text_contents()
    assert {"/api/v1/tickets", "/api/v1/stats"} <= {p.replace("\u200b", "") for p in paths}
    assert all(url.startswith(live_server) for url in requested), requested  # nothing from a CDN
    viewer_page.screenshot(path=str(ARTIFACTS / "viewer-api-docs.png"))
    assert not viewer_page.console_errors, viewer_page.console_errors
