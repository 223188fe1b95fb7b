"""The whole loop, for real: tickets reviewed through the API -> a dataset saved from the search page
in headless Chromium -> two experiments run by otel_bridge.experiments (a separate process, the
real bridge, a changed workflow) into the live server -> the experiment page shows per-item diffs
and totals, and the comparison judges each item. Screenshots in test-artifacts/."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx
import pytest

from .helpers import ARTIFACTS, browser_login, make_key

pytestmark = pytest.mark.browser

WORKFLOW = textwrap.dedent('''
    import json, sys
    from otel_bridge import configure, experiments, record, workflow

    configure(export_timeout_seconds=5)
    VERSION = sys.argv[1]

    @workflow("flusso_ticket")
    def handle_ticket(ticket):
        record.ticket(ticket_id=ticket["ticket_id"], subject=ticket.get("subject"), channel="email")
        record.llm_call(model="gpt-4o-mini", input_tokens=900, output_tokens=80,
                        cost_usd=0.002 if VERSION == "v6" else 0.001)
        if VERSION == "v7" and ticket["ticket_id"] == "A-3":
            raise RuntimeError("the new prompt broke this one")
        when = "today" if VERSION == "v6" else "tomorrow <b>for sure</b>"
        record.draft(f"Hello, your order ships {when}.")
        record.outcome(status="SUCCESS" if VERSION == "v7" or ticket["ticket_id"] != "A-2" else "PARTIAL")
        return when

    result = experiments.run(dataset="hard-cases", workflow=handle_ticket, name=f"prompt-{VERSION}",
                             concurrency=2)
    print(json.dumps(result.__dict__))
''')


def _run_experiment(tmp_path, base: str, ingest: str, read: str, version: str) -> dict:
    import json

    script = tmp_path / "run_experiment.py"
    script.write_text(WORKFLOW)
    env = {**os.environ, "ENVIRONMENT": "test", "LOG_COLLECTOR_URL": base, "LOG_COLLECTOR_API_KEY": ingest,
           "LOG_COLLECTOR_READ_KEY": read}
    out = subprocess.run([sys.executable, str(script), version], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "4/4 items" in out.stderr  # the progress display
    return json.loads(out.stdout.strip().splitlines()[-1])


def _review(base: str, key: str, log_id: int, **body) -> None:
    r = httpx.post(f"{base}/api/v1/tickets/{log_id}/reviews", json=body, headers={"X-API-Key": key})
    assert r.status_code == 201, r.text


def test_reviewed_tickets_to_a_dataset_to_two_experiments_compared(viewer_page, live_server, module_db, tmp_path):
    dsn, _, ids = module_db
    review, read, ingest = (make_key(dsn, "acme", s) for s in ("review", "read", "ingest"))
    _review(live_server, review, ids["A-2"], verdict="incorrect", corrected_draft="Hello, your order ships today.")
    _review(live_server, review, ids["A-3"], verdict="incorrect", flags=["hallucination"])
    _review(live_server, review, ids["A-1"], verdict="correct")
    _review(live_server, review, ids["A-5"], verdict="needs_work", corrected_draft="Your order ships today.")

    page = viewer_page
    browser_login(page, live_server, "acme@example.com")
    page.goto(f"{live_server}/tickets?reviewed=yes")
    page.fill("#dataset-name", "hard-cases")
    page.screenshot(path=str(ARTIFACTS / "datasets-search-save.png"), full_page=True)
    page.click("#save-dataset-button")
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/datasets/hard-cases?client=acme")
    assert page.text_content("#item-count") == "4"
    page.screenshot(path=str(ARTIFACTS / "datasets-dataset.png"), full_page=True)

    v6 = _run_experiment(tmp_path, live_server, ingest, read, "v6")
    v7 = _run_experiment(tmp_path, live_server, ingest, read, "v7")
    assert (v6["items"], v6["failed"], v6["delivered"]) == (4, 0, True)
    assert (v7["items"], v7["failed"], v7["delivered"]) == (4, 1, True)  # the workflow's error: a FAILED log

    api = httpx.Client(base_url=live_server, headers={"X-API-Key": read})
    data = api.get(f"/api/v1/experiments/{v7['id']}").json()
    assert data["totals"]["ran"] == 4 and data["totals"]["failed"] == 1 and data["totals"]["success"] == 3
    assert data["totals"]["cost_usd"] == pytest.approx(0.004)

    page.goto(f"{live_server}/experiments")
    page.click("#experiment-table a:text-is('prompt-v7')")
    page.wait_for_load_state("networkidle")
    assert page.text_content("#experiment-name") == "prompt-v7"
    assert page.text_content("#totals .t-items") == "4" and page.text_content("#totals .t-ran") == "4"
    assert page.text_content("#totals .t-failed") == "1"
    a2 = page.locator("#item-table tr", has_text="A-2")
    assert a2.locator("del").first.text_content().strip() == "today."
    assert "tomorrow <b>for sure</b>." in a2.locator("ins").first.text_content()  # text, not markup
    assert page.locator("#item-table b").count() == 0
    page.screenshot(path=str(ARTIFACTS / "datasets-experiment.png"), full_page=True)

    page.select_option("#compare-with", v6["id"])
    page.click("#compare-button")
    page.wait_for_load_state("networkidle")
    # B (v6) against A (v7): A-3 FAILED in v7 -> SUCCESS in v6 is better; A-2 SUCCESS -> PARTIAL worse
    assert page.text_content("#summary tr[data-metric=status] .better") == "1"
    assert page.text_content("#summary tr[data-metric=status] .worse") == "1"
    assert page.text_content("#item-table tr[class='outcome-worse'] .ticket-id") == "A-2"
    page.screenshot(path=str(ARTIFACTS / "datasets-compare.png"), full_page=True)
    assert not page.console_errors, page.console_errors

    # the logs went through the normal pipeline: redacted like any other, tagged with the experiment
    import psycopg
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT log_data, dataset_item_id FROM workflow_logs WHERE experiment_id = %s",
                            [v7["id"]]).fetchall()
    assert len(rows) == 4 and all(r[1] is not None for r in rows)
    assert rows[0][0]["identification"]["experiment"]["name"] == "prompt-v7"
