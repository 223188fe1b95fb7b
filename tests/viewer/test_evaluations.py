"""Evaluations in the viewer: the provider's evaluators page (CSRF, field-named errors, markup
escaped, client users 404), scores on the ticket page and in the JSON API, the score filter on
/tickets, the exports' eval columns, the overview's series and judge calibration; every read
tenant-scoped. And in real headless Chromium: the evaluators page and a scored ticket."""
from __future__ import annotations

import psycopg
import pytest

from .helpers import ARTIFACTS, browser_login, csrf_token, login, post_review

FORM = {"name": "grounded", "kind": "groundedness", "client": "", "sample_rate": "1", "workflow": "", "status": "",
        "phrases": "", "rubric": "", "cost_cap": ""}


def put_scores(dsn: str, ids: dict, scores: dict, evaluator: str = "grounded") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for ticket, score in scores.items():
            conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score,"
                         " reason) SELECT client_id, id, executed_at, %s, 1, %s, %s FROM workflow_logs WHERE id = %s"
                         " ON CONFLICT DO NOTHING", (evaluator, score, f"<b>reason {ticket}</b>", ids[ticket]))


def make_evaluator(dsn: str, name: str, client: str | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluators (name, kind, client_id) VALUES (%s, 'groundedness', %s)", (name, client))


def test_evaluators_page_is_the_providers_with_csrf_and_named_errors(app_client, loaded_db):
    login(app_client, "acme@example.com")
    assert app_client.get("/evaluators").status_code == 404
    assert app_client.post("/evaluators", data=FORM).status_code == 404
    app_client.post("/logout", data={"csrf_token": csrf_token(app_client, "/")})
    login(app_client, "provider@example.com")
    page = app_client.get("/evaluators")
    assert page.status_code == 200 and "The LLM judge is off" in page.text
    assert app_client.post("/evaluators", data=FORM).status_code == 400  # no CSRF token
    token = csrf_token(app_client, "/evaluators")
    for fields, message in [({"name": "<b>x</b>"}, "name: expected"), ({"kind": "judge"}, "cost_cap: a judge needs"),
                            ({"kind": "policy", "phrases": "x" * 201}, "patterns: a phrase has at most"),
                            ({"client": "nobody"}, "client: no tenant"), ({"sample_rate": "2"}, "sample_rate")]:
        bad = app_client.post("/evaluators", data={**FORM, **fields, "csrf_token": token})
        assert bad.status_code == 400 and message in bad.text, (fields, bad.text[-2000:])
        assert "<b>x</b>" not in bad.text
    created = app_client.post("/evaluators", data={**FORM, "kind": "judge", "name": "helpful", "cost_cap": "12.5",
                                                   "client": "acme", "rubric": "Grade {{draft}}",
                                                   "csrf_token": token})
    assert created.status_code == 201 and 'data-evaluator="helpful"' in created.text
    policy = app_client.post("/evaluators", data={**FORM, "kind": "policy", "name": "polite",
                                                  "phrases": "guarantee * refund\nlegal action", "csrf_token": token})
    assert policy.status_code == 201 and "2 phrase(s)" in policy.text
    again = app_client.post("/evaluators", data={**FORM, "kind": "policy", "name": "polite", "phrases": "x",
                                                 "csrf_token": token})
    assert again.status_code == 400 and "exists" in again.text


def test_scores_on_tickets_filter_exports_and_api_tenant_scoped(app_client, loaded_db):
    dsn, accounts, ids = loaded_db
    make_evaluator(dsn, "grounded")
    make_evaluator(dsn, "globex-only", client="globex")
    put_scores(dsn, ids, {"A-1": 0.9, "A-2": 0.2, "G-1": 0.1})
    put_scores(dsn, ids, {"G-1": 0.4}, evaluator="globex-only")
    login(app_client, "provider@example.com")
    low = app_client.get("/tickets", params={"eval": "grounded", "max_score": "0.5"})
    assert low.status_code == 200 and "A-2" in low.text and "G-1" in low.text and "A-1</a>" not in low.text
    ticket = app_client.get(f"/tickets/{ids['A-2']}")
    assert 'data-evaluator="grounded"' in ticket.text and "0.20" in ticket.text
    assert "&lt;b&gt;reason A-2&lt;/b&gt;" in ticket.text and "<b>reason" not in ticket.text
    for params, field in [({"eval": "Bad!"}, "eval"), ({"eval": "grounded", "min_score": "2"}, "min_score"),
                          ({"max_score": "0.5"}, "eval"), ({"eval": "g", "min_score": "0.8", "max_score": "0.2"},
                                                           "min_score")]:
        bad = app_client.get("/api/v1/tickets", params=params)
        assert bad.status_code == 400 and bad.json()["detail"].startswith(field), (params, bad.text)
    csv_all = app_client.get("/tickets/export.csv").text.splitlines()
    assert csv_all[0].endswith(",eval:globex-only,eval:grounded")
    key = {"X-API-Key": accounts["read_key"]}  # acme's
    mine = app_client.get("/api/v1/tickets", params={"eval": "grounded", "max_score": "0.5"}, headers=key).json()
    assert [t["ticket_id"] for t in mine["tickets"]] == ["A-2"] and mine["tickets"][0]["scores"] == {"grounded": 0.2}
    one = app_client.get(f"/api/v1/tickets/{ids['A-1']}", headers=key).json()
    assert [(e["evaluator"], e["score"]) for e in one["evaluations"]] == [("grounded", 0.9)]
    assert app_client.get(f"/api/v1/tickets/{ids['G-1']}", headers=key).status_code == 404
    exported = app_client.get("/api/v1/tickets/export.csv", headers=key).text.splitlines()
    assert exported[0].endswith(",eval:grounded") and "globex-only" not in exported[0]
    a1 = next(line for line in exported if ",A-1," in line)
    assert a1.endswith(",0.9")
    as_json = app_client.get("/api/v1/tickets/export.json", headers=key).json()
    assert {t["ticket_id"]: t["scores"] for t in as_json}["A-2"] == {"grounded": 0.2}
    stats = app_client.get("/api/v1/stats", headers=key).json()["evaluations"]
    assert set(stats["series"]) == {"grounded"} and sum(p["n"] for p in stats["series"]["grounded"]) == 2
    assert stats["calibration"] == []  # no reviewed ticket has a score
    assert post_review(app_client, ids["A-2"], verdict="incorrect").status_code in (201, 303)
    overview = app_client.get("/").text
    judge = overview.split('id="judge-calibration"', 1)[1].split("</table>", 1)[0]
    assert 'data-evaluator="grounded"' in judge and "fewer than 30 reviewed" in judge
    cal = app_client.get("/api/v1/stats").json()["evaluations"]["calibration"]
    assert [(c["evaluator"], c["n"], c["enough"]) for c in cal] == [("grounded", 1, False)]


@pytest.mark.browser
def test_browser_evaluators_page_and_a_scored_ticket(viewer_page, live_server, module_db):
    dsn, _, ids = module_db
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.click("nav a[href='/evaluators']")
    viewer_page.wait_for_load_state("networkidle")
    viewer_page.fill("input[name=name]", "no-promises")
    viewer_page.select_option("select[name=kind]", "policy")
    viewer_page.fill("textarea[name=phrases]", "guarantee * refund")
    viewer_page.click("#new-evaluator button[type=submit]")
    viewer_page.wait_for_load_state("networkidle")
    assert "no-promises" in viewer_page.text_content("#created")
    assert viewer_page.locator("tr[data-evaluator='no-promises']").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    viewer_page.screenshot(path=str(ARTIFACTS / "evaluators.png"), full_page=True)
    put_scores(dsn, ids, {"A-1": 0.35}, evaluator="no-promises")
    viewer_page.goto(f"{live_server}/tickets/{ids['A-1']}")
    viewer_page.wait_for_load_state("networkidle")
    row = viewer_page.locator("#evaluation-scores tr[data-evaluator='no-promises']")
    assert row.locator("[data-field=score]").text_content().strip() == "0.35"
    row.scroll_into_view_if_needed()
    viewer_page.screenshot(path=str(ARTIFACTS / "ticket-scores.png"), full_page=True)
    viewer_page.goto(f"{live_server}/tickets?eval=no-promises&max_score=0.5")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.locator("#ticket-table tbody tr").count() == 1
    assert viewer_page.locator("span[data-eval='no-promises']").count() == 1
    viewer_page.goto(f"{live_server}/")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.locator("#chart-evaluations").count() == 1
    viewer_page.locator("#evaluations").scroll_into_view_if_needed()
    viewer_page.screenshot(path=str(ARTIFACTS / "overview-evaluations.png"), full_page=True)


def test_retention_drops_the_scores_of_dropped_months(loaded_db):
    from datetime import date

    from collector_api.store.logs.partitions import drop_partitions_before, ensure_partitions, list_partitions

    dsn, _, ids = loaded_db
    put_scores(dsn, ids, {"A-OLD": 0.5, "A-1": 0.7})
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluation_outcomes (client_id, log_id, executed_at, evaluator, version, outcome)"
                     " SELECT client_id, id, executed_at, 'judge', 1, 'invalid' FROM workflow_logs WHERE id = %s",
                     (ids["A-OLD"],))
        old_day = conn.execute("SELECT executed_at FROM workflow_logs WHERE id = %s",
                               (ids["A-OLD"],)).fetchone()[0].date()
        ensure_partitions(conn, first=old_day)
        [part] = [p for p in list_partitions(conn) if p.start <= old_day < p.end]
        assert part.end <= date.today()
        drop_partitions_before(conn, part.end)
        assert [r[0] for r in conn.execute("SELECT log_id FROM evaluation_scores")] == [ids["A-1"]]
        assert conn.execute("SELECT count(*) FROM evaluation_outcomes").fetchone()[0] == 0
