"""Disabling, enabling and deleting an evaluator from the provider's evaluators page: forms with
the session's CSRF token, client users (a hostile tenant) 404 and change nothing, hostile names
and actions answered 4xx; a deleted evaluator's scores stay on the ticket page under its name,
marked deleted, for its own tenant only; an error outcome shows its attempts."""
from __future__ import annotations

import psycopg
import pytest

from .helpers import ARTIFACTS, browser_login, csrf_token, login


def make_evaluator(dsn: str, name: str, client: str | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluators (name, kind, client_id) VALUES (%s, 'groundedness', %s)", (name, client))


def put_score(dsn: str, log_id: int, evaluator: str, score: float) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score, reason)"
                     " SELECT client_id, id, executed_at, %s, 1, %s, 'kept' FROM workflow_logs WHERE id = %s",
                     (evaluator, score, log_id))


def state(dsn: str, name: str) -> tuple:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT enabled, deleted_at IS NOT NULL FROM evaluators WHERE name = %s",
                            (name,)).fetchone()


def test_a_client_user_cannot_change_evaluators(app_client, loaded_db):
    dsn, _, _ = loaded_db
    make_evaluator(dsn, "grounded")
    make_evaluator(dsn, "acme-only", client="acme")
    login(app_client, "acme@example.com")
    token = csrf_token(app_client, "/")  # a valid token of the client's own session
    for name in ("grounded", "acme-only"):
        for action in ("disable", "delete"):
            r = app_client.post(f"/evaluators/{name}/{action}", data={"csrf_token": token})
            assert r.status_code == 404, (name, action, r.status_code)
    assert state(dsn, "grounded") == (True, False) and state(dsn, "acme-only") == (True, False)


def test_provider_disables_enables_and_deletes_with_csrf(app_client, loaded_db):
    dsn, _, ids = loaded_db
    make_evaluator(dsn, "grounded")
    put_score(dsn, ids["A-1"], "grounded", 0.25)
    login(app_client, "provider@example.com")
    assert app_client.post("/evaluators/grounded/disable").status_code == 400  # no CSRF token
    assert app_client.post("/evaluators/grounded/disable", data={"csrf_token": "forged"}).status_code == 400
    assert state(dsn, "grounded") == (True, False)
    token = csrf_token(app_client, "/evaluators")
    page = app_client.post("/evaluators/grounded/disable", data={"csrf_token": token})
    assert page.status_code == 200 and "<strong>grounded</strong> disabled" in page.text
    row = page.text.split('data-evaluator="grounded"', 1)[1].split("</tr>", 1)[0]
    assert "disabled" in row and 'action="/evaluators/grounded/enable"' in row
    assert state(dsn, "grounded") == (False, False)
    assert app_client.post("/evaluators/grounded/enable", data={"csrf_token": token}).status_code == 200
    assert state(dsn, "grounded") == (True, False)
    gone = app_client.post("/evaluators/grounded/delete", data={"csrf_token": token})
    assert gone.status_code == 200 and "Its scores stay on the tickets" in gone.text
    assert 'data-evaluator="grounded"' not in gone.text and state(dsn, "grounded") == (False, True)
    again = app_client.post("/evaluators/grounded/delete", data={"csrf_token": token})
    assert again.status_code == 404 and "no evaluator" in again.text
    reuse = app_client.post("/evaluators", data={"name": "grounded", "kind": "language", "csrf_token": token})
    assert reuse.status_code == 400 and "was deleted and its scores keep that name" in reuse.text
    ticket = app_client.get(f"/tickets/{ids['A-1']}").text
    row = ticket.split('id="evaluation-scores"', 1)[1].split('data-evaluator="grounded"', 1)[1].split("</tr>", 1)[0]
    assert 'data-field="deleted"' in row and "0.25" in row


def test_hostile_names_and_actions_are_4xx(app_client, loaded_db):
    dsn, _, _ = loaded_db
    make_evaluator(dsn, "grounded")
    login(app_client, "provider@example.com")
    token = csrf_token(app_client, "/evaluators")
    for path in ("/evaluators/grounded/drop", "/evaluators/<script>x<%2Fscript>/delete",
                 "/evaluators/" + "a" * 5000 + "/disable", "/evaluators/grounded'%20OR%201=1--/delete",
                 "/evaluators/%00/enable"):
        r = app_client.post(path, data={"csrf_token": token})
        assert 400 <= r.status_code < 500, (path[:60], r.status_code)
        assert "<script>x" not in r.text
    assert state(dsn, "grounded") == (True, False)


def test_the_tenant_sees_its_deleted_evaluators_scores_and_error_attempts(app_client, loaded_db):
    dsn, _, ids = loaded_db
    make_evaluator(dsn, "grounded")
    put_score(dsn, ids["A-2"], "grounded", 0.5)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluators (name, kind, monthly_cost_cap_usd) VALUES ('judge', 'judge', 5)")
        conn.execute("INSERT INTO evaluation_outcomes (client_id, log_id, executed_at, evaluator, version, outcome,"
                     " detail, attempts, next_attempt_at) SELECT client_id, id, executed_at, 'judge', 1, 'error',"
                     " 'error: HTTP 502', 4, NULL FROM workflow_logs WHERE id = %s", (ids["A-2"],))
        conn.execute("UPDATE evaluators SET deleted_at = now(), enabled = false WHERE name = 'grounded'")
    login(app_client, "acme@example.com")
    ticket = app_client.get(f"/tickets/{ids['A-2']}").text
    scores = ticket.split('id="evaluation-scores"', 1)[1].split("</table>", 1)[0]
    grounded = scores.split('data-evaluator="grounded"', 1)[1].split("</tr>", 1)[0]
    assert "0.50" in grounded and 'data-field="deleted"' in grounded
    judge = scores.split('data-evaluator="judge"', 1)[1].split("</tr>", 1)[0]
    assert "error" in judge and "4 attempts, no more retries" in judge and "HTTP 502" in judge
    api = app_client.get(f"/api/v1/tickets/{ids['A-2']}").json()["evaluations"]
    assert {e["evaluator"]: (e["deleted"], e["attempts"]) for e in api} == {"grounded": (True, None),
                                                                            "judge": (False, 4)}
    app_client.post("/logout", data={"csrf_token": csrf_token(app_client, "/")})
    login(app_client, "globex@example.com")
    assert app_client.get(f"/tickets/{ids['A-2']}").status_code == 404


@pytest.mark.browser
def test_browser_disable_then_delete_an_evaluator_and_its_scores_stay(viewer_page, live_server, module_db):
    dsn, _, ids = module_db
    make_evaluator(dsn, "retired-check")
    put_score(dsn, ids["A-1"], "retired-check", 0.4)
    browser_login(viewer_page, live_server, "provider@example.com")
    viewer_page.goto(f"{live_server}/evaluators")
    row = "tr[data-evaluator='retired-check']"
    viewer_page.click(f"{row} button[data-action=disable]")
    viewer_page.wait_for_load_state("networkidle")
    assert "disabled" in viewer_page.text_content("#changed")
    assert "disabled" in viewer_page.text_content(f"{row} [data-field=state]")
    ARTIFACTS.mkdir(exist_ok=True)
    viewer_page.screenshot(path=str(ARTIFACTS / "evaluator-disabled.png"), full_page=True)
    viewer_page.click(f"{row} button[data-action=delete]")
    viewer_page.wait_for_load_state("networkidle")
    assert "Its scores stay" in viewer_page.text_content("#changed")
    assert viewer_page.locator(row).count() == 0
    viewer_page.goto(f"{live_server}/tickets/{ids['A-1']}")
    viewer_page.wait_for_load_state("networkidle")
    scored = viewer_page.locator("#evaluation-scores tr[data-evaluator='retired-check']")
    assert scored.locator("[data-field=score]").text_content().strip() == "0.40"
    assert scored.locator("[data-field=deleted]").count() == 1
    scored.scroll_into_view_if_needed()
    viewer_page.screenshot(path=str(ARTIFACTS / "ticket-deleted-evaluator.png"))
