"""Search list, filters, pagination, ticket detail, exports and overview numbers."""
from __future__ import annotations

import csv
import io

from .helpers import login, make_log, store_logs


def _ticket_ids(html: str) -> list[str]:
    return [part.split("</a>", 1)[0].split(">")[-1] for part in html.split('class="ticket-id"')[1:]]


def test_filters_narrow_the_list(app_client):
    login(app_client, "provider@example.com")
    assert _ticket_ids(app_client.get("/tickets?status=FAILED").text) == ["G-2", "A-2"]  # same time: newest id first
    assert _ticket_ids(app_client.get("/tickets?client=acme&environment=staging").text) == ["A-3"]
    assert _ticket_ids(app_client.get("/tickets?client=acme&version=2.4.0").text) == ["A-4"]
    assert _ticket_ids(app_client.get("/tickets?resolution=escalated&client=globex").text) == ["G-2"]
    confident = app_client.get("/tickets?min_confidence=0.8&max_confidence=0.9&client=acme").text
    assert _ticket_ids(confident) == ["A-1", "A-4"]
    assert _ticket_ids(app_client.get("/tickets?min_duration=20").text) == ["G-2", "A-2"]
    assert _ticket_ids(app_client.get("/tickets?ticket=G-").text) == ["G-1", "G-2", "G-3"]
    assert _ticket_ids(app_client.get("/tickets?ticket=A-_").text) == []  # LIKE wildcards are literal
    by_conf = _ticket_ids(app_client.get("/tickets?client=globex&sort=confidence&order=asc").text)
    assert by_conf == ["G-2", "G-1", "G-3"]
    by_duration = _ticket_ids(app_client.get("/tickets?client=globex&sort=duration").text)
    assert by_duration == ["G-2", "G-1", "G-3"]


def test_date_range_and_count(app_client):
    from datetime import timedelta

    from .helpers import NOW

    login(app_client, "acme@example.com")
    page = app_client.get("/tickets").text
    assert 'id="result-count">6<' in page
    start = (NOW - timedelta(days=30)).date().isoformat()
    page = app_client.get(f"/tickets?start={start}").text
    assert 'id="result-count">5<' in page and "A-OLD" not in page
    # the form keeps the filters: the shareable URL round-trips
    assert f'name="start" value="{start}"' in page


def test_keyset_pagination_walks_every_row_once(app_client):
    login(app_client, "provider@example.com")
    for sort in ("time", "confidence", "duration"):
        seen, url = [], f"/api/v1/tickets?limit=2&sort={sort}"
        while url:
            body = app_client.get(url).json()
            seen += [t["ticket_id"] for t in body["tickets"]]
            url = f"/api/v1/tickets?limit=2&sort={sort}&after={body['next_cursor']}" if body["next_cursor"] else None
        assert sorted(seen) == sorted(["A-1", "A-2", "A-3", "A-4", "A-5", "A-OLD", "G-1", "G-2", "G-3"]), sort
    page = app_client.get("/tickets?limit=2&status=SUCCESS").text
    assert len(_ticket_ids(page)) == 2
    next_link = page.split('id="next-page"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert "status=SUCCESS" in next_link and "limit=2" in next_link and "after=" in next_link
    assert len(_ticket_ids(app_client.get(next_link).text)) == 2
    api = app_client.get("/api/v1/tickets?limit=2&status=SUCCESS").json()
    assert api["count"] == 6 and api["count_capped"] is False and api["next_cursor"]


def test_bad_filter_values_give_a_clear_400(app_client):
    login(app_client, "provider@example.com")
    cases = {"status=DONE": "status", "start=yesterday": "start", "min_confidence=2": "min_confidence",
             "min_confidence=abc": "min_confidence", "sort=cost": "sort", "after=garbage": "after",
             "order=up": "order", "start=2026-02-01&end=2026-01-01": "start", "client=%3Cscript%3E": "client",
             "min_duration=nan": "min_duration"}
    for query, field in cases.items():
        page = app_client.get(f"/tickets?{query}")
        assert page.status_code == 400, query
        assert field in page.text and 'id="error-message"' in page.text
        api = app_client.get(f"/api/v1/tickets?{query}")
        assert api.status_code == 400 and api.json()["detail"].startswith(field), query
    assert app_client.get("/tickets/notanumber").status_code == 404
    assert app_client.get("/tickets/99999999").status_code == 404
    assert app_client.get("/?start=2026-13-01").status_code == 400


def test_ticket_detail_shows_every_section(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    page = app_client.get(f"/tickets/{ids['A-2']}").text
    for section in ('id="waterfall"', 'id="react"', 'id="retrieval"', 'id="evidence"', 'id="decisions"',
                    'id="draft"', 'id="metrics"', 'id="raw"'):
        assert section in page
    assert "Look up the order" in page and "order_lookup" in page  # ReACT iteration
    assert "Printer error E4" in page and "Resetting error E4" in page  # retrieval
    assert "prefer KB article (newer)" in page and "button location" in page  # evidence
    assert "needs tool lookups" in page  # decision reasoning
    assert "wf-row depth-1" in page  # planner nested under the workflow span
    raw = app_client.get(f"/tickets/{ids['A-2']}/raw")
    assert raw.headers["content-disposition"].startswith("attachment")
    assert raw.json()["ticket_info"]["ticket_id"] == "A-2"
    api = app_client.get(f"/api/v1/tickets/{ids['A-2']}").json()
    assert api["ticket"]["status"] == "FAILED" and api["log"]["trace"]["react"]["iterations"][0]["n"] == 1


def test_markup_in_a_log_is_escaped(app_client, loaded_db):
    dsn, _, _ = loaded_db
    doc = make_log("acme", "<script>alert(1)</script>")
    doc["trace"]["react"]["iterations"][0]["thought"] = '<img src=x onerror="alert(2)">{{ 7*7 }}'
    doc["trace"]["output"]["draft"] = '<a href="javascript:alert(3)">click</a>'
    doc["trace"]["spans"][1]["attributes"] = {"<b>k</b>": "<svg onload=alert(4)>"}
    [log_id] = store_logs(dsn, [doc])
    login(app_client, "acme@example.com")
    page = app_client.get(f"/tickets/{log_id}").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page
    assert '<a href="javascript' not in page and "{{ 7*7 }}" in page and "49" not in page.split("{{ 7*7 }}")[0][-5:]
    assert "<svg onload" not in page
    listing = app_client.get("/tickets").text
    assert "<script>alert(1)" not in listing


def test_exports_follow_filters_and_escape_formulas(app_client, loaded_db):
    dsn, _, _ = loaded_db
    store_logs(dsn, [make_log("acme", "=HYPERLINK(\"http://x\")", status="FAILED"),
                     make_log("acme", "@SUM(A1)", status="FAILED")])
    login(app_client, "acme@example.com")
    response = app_client.get("/tickets/export.csv?status=FAILED")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(r["ticket_id"] for r in rows) == sorted(["A-2", "'=HYPERLINK(\"http://x\")", "'@SUM(A1)"])
    assert {r["client_id"] for r in rows} == {"acme"}
    data = app_client.get("/tickets/export.json?status=FAILED").json()
    assert len(data) == 3 and all(r["status"] == "FAILED" for r in data)
    assert app_client.get("/tickets/export.csv?status=bad").status_code == 400


def test_overview_numbers_match_the_stats_api(app_client):
    login(app_client, "provider@example.com")
    stats = app_client.get("/api/v1/stats").json()
    t = stats["totals"]
    assert t["tickets"] == 8  # A-OLD is older than 30 days
    assert t["success"] == 5 and t["failed"] == 2 and t["partial"] == 1
    assert abs(t["success_rate"] - 5 / 8) < 1e-9
    assert len(stats["per_day"]) == 30
    assert sum(d["success"] + d["partial"] + d["failed"] for d in stats["per_day"]) == 8
    assert sum(b["tickets"] for b in stats["duration_histogram"]) == 8
    assert {n["node"] for n in stats["node_durations"]} >= {"planner", "react_agent"}
    assert {c["client_id"]: c["tickets"] for c in stats["per_client"]} == {"acme": 5, "globex": 3}
    page = app_client.get("/").text
    assert 'data-stat="tickets">8<' in page and "62.5 %" in page
    acme = app_client.get("/api/v1/stats?client=acme").json()
    assert acme["totals"]["tickets"] == 5 and acme["per_client"] == []
    from datetime import timedelta

    from .helpers import NOW
    year = app_client.get(f"/api/v1/stats?start={(NOW - timedelta(days=365)).date()}").json()
    assert year["totals"]["tickets"] == 9 and len(year["per_day"]) == 366
    assert app_client.get("/api/v1/stats?start=2000-01-01").status_code == 400  # over 10 years


def test_openapi_describes_the_viewer_api(app_client):
    paths = app_client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/tickets", "/api/v1/tickets/{log_id}", "/api/v1/stats"} <= set(paths)
    params = {p["name"] for p in paths["/api/v1/tickets"]["get"]["parameters"]}
    assert {"status", "client", "min_confidence", "after", "limit"} <= params
    assert "/tickets" not in paths and "/login" not in paths


def test_waterfall_nests_spans_and_highlights_errors(app_client, loaded_db):
    dsn = loaded_db[0]
    doc = make_log("acme", "W-1", status="FAILED")
    root = doc["trace"]["spans"][0]["span_id"]
    doc["trace"]["spans"] += [
        {"name": "react_agent", "kind": "agent", "span_id": "aa00000000000001", "parent_span_id": root,
         "start_offset_ms": 900.0, "duration_ms": 2000.0, "status": "OK", "error": None, "attributes": {}},
        {"name": "tool_call", "kind": "tool", "span_id": "aa00000000000002", "parent_span_id": "aa00000000000001",
         "start_offset_ms": 1000.0, "duration_ms": 300.0, "status": "ERROR", "error": "TimeoutError: 30 s",
         "attributes": {"tool.name": "order_lookup"}},
        {"name": "orphan", "kind": "x", "span_id": "aa00000000000003", "parent_span_id": "ffffffffffffffff",
         "start_offset_ms": None, "duration_ms": None, "status": "OK", "error": None, "attributes": {}},
    ]
    [log_id] = store_logs(dsn, [doc])
    login(app_client, "acme@example.com")
    page = app_client.get(f"/tickets/{log_id}").text
    waterfall = page.split('id="waterfall"', 1)[1].split("</section>", 1)[0]
    rows = waterfall.split('<details class="wf-row ')[1:]
    names = [r.split('class="wf-name">', 1)[1].split("<", 1)[0].strip() for r in rows]
    assert names == ["flusso_ticket", "planner", "react_agent", "tool_call", "orphan"]
    assert rows[3].startswith("depth-2 failed") and "TimeoutError: 30 s" in rows[3] and "order_lookup" in rows[3]
    assert rows[4].startswith("depth-0")  # unknown parent: shown at the top level, not lost


def test_templates_have_no_inline_script_or_style():
    import re
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "viewer" / "templates"
    for template in folder.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\b(src|type=\"application/json\"))[^>]*>", text), template.name
        assert not re.search(r"\sstyle=|<style|\son[a-z]+=", text), template.name
        assert "|safe" not in text.replace(" ", ""), template.name


def test_count_is_capped(app_client, monkeypatch):
    from collector_api.store.logs import reads

    monkeypatch.setattr(reads, "COUNT_CAP", 4)
    login(app_client, "provider@example.com")
    page = app_client.get("/tickets").text
    assert 'id="result-count">4+<' in page
    body = app_client.get("/api/v1/tickets").json()
    assert body["count"] == 4 and body["count_capped"] is True and body["count_text"] == "4+"
    assert app_client.get("/api/v1/tickets?client=globex").json()["count_capped"] is False


HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_unknown_page_in_a_browser_gets_the_friendly_404(app_client):
    anonymous = app_client.get("/nonexistent", headers=HTML)
    assert anonymous.status_code == 404 and anonymous.headers["content-type"].startswith("text/html")
    assert 'id="error-message"' in anonymous.text and "Not found" in anonymous.text
    assert "Sign out" not in anonymous.text  # no session: no navigation
    assert "content-security-policy" in anonymous.headers
    login(app_client, "acme@example.com")
    page = app_client.get("/nonexistent/deeper?x=<b>", headers=HTML)
    assert page.status_code == 404 and 'id="error-message"' in page.text
    assert 'href="/tickets"' in page.text and "Sign out" in page.text and "acme@example.com" in page.text
    assert "<b>" not in page.text


def test_api_and_collector_paths_keep_machine_errors(app_client):
    login(app_client, "acme@example.com")
    for path in ("/api/nope", "/api/v1/nope", "/v1/nope", "/healthz/nope", "/readyz/x", "/metrics/x"):
        response = app_client.get(path, headers=HTML)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json"), path
        assert response.json() == {"detail": "Not Found"}, path
    plain = app_client.get("/nonexistent")  # a client that does not ask for HTML
    assert plain.status_code == 404 and plain.json() == {"detail": "Not Found"}
    assert app_client.get("/docs", headers={"Accept": "application/json"}).json() == {"detail": "Not Found"}


def test_ticket_header_and_metrics_read_well(app_client, loaded_db):
    _, _, ids = loaded_db
    login(app_client, "acme@example.com")
    page = app_client.get(f"/tickets/{ids['A-2']}").text
    head = page.split('class="ticket-head', 1)[1].split("</header>", 1)[0]
    assert '<span class="nowrap">' in head and " UTC</span>" in head  # date and time never split inside
    assert 'class="trace-id"' in head and 'title="' in head
    metrics = page.split('id="metrics"', 1)[1].split("</section>", 1)[0]
    keys = [part.split("</dt>", 1)[0] for part in metrics.split("<dt>")[1:]]
    assert keys[:4] == ["overall_confidence", "hallucination_risk", "execution_time_seconds", "react_iterations"]
    assert keys.index("cost_usd") < keys.index("evidence_items")
    assert 'class="section-gap">Ticket</h2>' in metrics
    axis = page.split('class="wf-axis"', 1)[1].split("</div>", 1)[0]
    assert 'class="last"' in axis and ">0<" in axis


def test_a_log_without_iteration_detail_says_how_many_llm_calls_it_counted(app_client, loaded_db):
    """A log assembled from OpenTelemetry spans counts react_iterations (LLM calls under the agent)
    but has no thought/action/observation: the page said "0 ... No ReACT iterations recorded"
    next to metrics saying 2."""
    dsn, _, _ = loaded_db
    doc = make_log("acme", "OT-1")
    doc["trace"].pop("react", None)
    doc["metrics"]["react_iterations"] = 2
    doc["identification"]["source"] = "otlp-traces"
    [log_id] = store_logs(dsn, [doc])
    login(app_client, "acme@example.com")
    page = app_client.get(f"/tickets/{log_id}").text
    react = page.split('id="react"', 1)[1].split("</section>", 1)[0]
    assert "<small>2</small>" in react and "2 LLM calls under the agent span" in react
    assert "assembled from OpenTelemetry spans" in react and "No ReACT iterations recorded" not in react
