"""Sessions in the viewer and the JSON API: grouping, keyset pages, tenancy (another tenant's key
is a 404, even for its own token), the ticket page's link, bad parameters."""
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.contract.sessions import derive_session_key

from .helpers import csrf_token, login, make_log, store_logs

TOKEN = "[email:a3f9d8e2b1c5]"  # the example log's requester (docs/workflow-log.example.json)
ACME_KEY, GLOBEX_KEY = (derive_session_key(c, "email", TOKEN) for c in ("acme", "globex"))


def _customer(client: str, ticket: str, days_ago: float, email: str, **kw) -> dict:
    doc = make_log(client, ticket, days_ago=days_ago, **kw)
    doc["trace"]["ticket"]["requester_email"] = email
    return doc


def test_the_provider_sees_each_tenants_session_and_filters_by_client(app_client):
    assert login(app_client, "provider@example.com").status_code == 303
    data = app_client.get("/api/v1/sessions").json()
    by_key = {s["session_key"]: s for s in data["sessions"]}
    assert set(by_key) == {ACME_KEY, GLOBEX_KEY}  # one email, two tenants: two keys
    assert by_key[ACME_KEY]["tickets"] == 5 and by_key[GLOBEX_KEY]["tickets"] == 3  # A-OLD: outside 30 days
    acme = by_key[ACME_KEY]
    assert (acme["success"], acme["partial"], acme["failed"], acme["resolved"]) == (3, 1, 1, 3)
    assert acme["open_reviews"] == 2  # the FAILED and the PARTIAL ticket, not reviewed
    assert [s["session_key"] for s in app_client.get("/api/v1/sessions?client=acme").json()["sessions"]] == [ACME_KEY]
    page = app_client.get("/sessions")
    assert page.status_code == 200 and ACME_KEY in page.text and GLOBEX_KEY in page.text


def test_a_client_sees_its_own_sessions_and_another_tenants_key_is_a_404(app_client):
    assert login(app_client, "acme@example.com").status_code == 303
    listed = app_client.get("/api/v1/sessions?client=globex").json()["sessions"]
    assert [s["session_key"] for s in listed] == [ACME_KEY]
    for path in (f"/api/v1/sessions/{GLOBEX_KEY}", f"/api/v1/sessions/{GLOBEX_KEY}?client=globex",
                 f"/sessions/{GLOBEX_KEY}", "/api/v1/sessions/email-" + "0" * 32):
        assert app_client.get(path).status_code == 404, path
    assert "globex" not in app_client.get(f"/sessions/{GLOBEX_KEY}").text.lower().replace("globex@", "")
    one = app_client.get(f"/api/v1/sessions/{ACME_KEY}").json()
    assert one["client_id"] == "acme" and one["summary"]["tickets"] == 6
    times = [t["executed_at"] for t in one["tickets"]]
    assert times == sorted(times) and one["tickets"][0]["ticket_id"] == "A-OLD"
    assert one["tickets"][0]["days_since_previous"] is None and one["tickets"][1]["days_since_previous"] > 30
    # A-OLD (resolved) -> A-5 37 days later: no; A-5 (resolved) -> A-4 3 days later: a recontact
    assert [t["recontact"] for t in one["tickets"]] == [None, False, True, True, False, False]
    assert one["tickets"][-1]["draft_excerpt"].startswith("Hello [name:")


def test_read_keys_read_sessions_and_ingest_keys_do_not(app_client, loaded_db):
    _, accounts, _ = loaded_db
    ok = app_client.get("/api/v1/sessions", headers={"X-API-Key": accounts["read_key"]})
    assert ok.status_code == 200 and [s["session_key"] for s in ok.json()["sessions"]] == [ACME_KEY]
    assert app_client.get("/api/v1/sessions", headers={"X-API-Key": accounts["ingest_key"]}).status_code == 401
    assert app_client.get(f"/api/v1/sessions/{GLOBEX_KEY}",
                          headers={"X-API-Key": accounts["read_key"]}).status_code == 404


def test_the_ticket_page_links_the_customers_other_tickets(app_client, loaded_db):
    _, _, ids = loaded_db
    assert login(app_client, "acme@example.com").status_code == 303
    page = app_client.get(f"/tickets/{ids['A-2']}").text
    assert f'href="/sessions/{ACME_KEY}"' in page and "this customer's other tickets (5)" in page
    session = app_client.get(f"/sessions/{ACME_KEY}").text
    assert f'href="/tickets/{ids["A-2"]}"' in session


def test_bad_parameters_are_named_4xx(app_client):
    assert login(app_client, "provider@example.com").status_code == 303
    for path, status, word in (("/api/v1/sessions?recontacted=maybe", 400, "recontacted"),
                               ("/api/v1/sessions?limit=0", 400, "limit"),
                               ("/api/v1/sessions?after=%%%", 400, "after"),
                               ("/api/v1/sessions?start=2026-13-01", 400, "start"),
                               ("/api/v1/sessions/not-a-key", 404, "session"),
                               ("/api/v1/sessions/" + "x" * 5000, 404, "session"),
                               (f"/api/v1/sessions/{ACME_KEY}?after=abc", 400, "after"),
                               ("/api/v1/sessions/email-'%3B--" + "0" * 24, 404, "session")):
        r = app_client.get(path)
        assert r.status_code == status and word in r.json()["detail"], (path, r.status_code, r.text[:200])


def test_keyset_pages_show_every_session_once_latest_contact_first(app_client, loaded_db):
    dsn = loaded_db[0]
    docs = []
    for i in range(7):  # customer i: a recent ticket and an older one, interleaved with the others
        email = f"[email:{i:012x}]"
        docs += [_customer("acme", f"C{i}-new", 0.1 + i * 0.3, email), _customer("acme", f"C{i}-old", 9 - i, email)]
    store_logs(dsn, docs)
    assert login(app_client, "acme@example.com").status_code == 303
    seen, after, pages = [], None, 0
    while True:
        r = app_client.get("/api/v1/sessions?limit=2" + (f"&after={after}" if after else "")).json()
        seen += r["sessions"]
        pages += 1
        after = r["next_cursor"]
        if not after:
            break
    keys = [s["session_key"] for s in seen]
    assert len(keys) == len(set(keys)) == 8 and pages >= 4  # 7 customers + the example's requester
    lasts = [s["last_contact"] for s in seen]
    assert lasts == sorted(lasts, reverse=True)
    assert all(s["tickets"] == 2 for s in seen if s["session_key"] != ACME_KEY)
    again = app_client.get("/api/v1/sessions?recontacted=no").json()["sessions"]
    assert again == []  # every acme session has 2+ tickets in the range
    assert len(app_client.get("/api/v1/sessions?recontacted=yes&limit=500").json()["sessions"]) == 8


def test_the_overview_and_the_usage_report_carry_the_recontact_rate(app_client):
    """Standard set, window 7 days, last 30 days: acme resolved A-1, A-4, A-5; A-5 and A-4 were
    followed within 7 days (A-4, A-3), A-1 not: 2 of 3. globex: G-3 followed by G-2, G-1 not: 1 of 2."""
    assert login(app_client, "provider@example.com").status_code == 303
    both = app_client.get("/api/v1/stats").json()["recontact"]
    assert both["window_days"] == 7 and (both["totals"]["resolved"], both["totals"]["recontacted"]) == (5, 3)
    assert {c["client_id"]: c["recontacted"] for c in both["per_client"]} == {"acme": 2, "globex": 1}
    assert sum(d["resolved"] for d in both["per_day"]) == 5 and len(both["per_day"]) >= 30
    page = app_client.get("/").text
    assert 'data-stat="recontact_rate">60' in page and 'id="chart-recontact"' in page
    start = (datetime.now(UTC) - timedelta(days=29)).date().isoformat()
    usage = app_client.get(f"/api/v1/usage?start={start}&end={datetime.now(UTC).date().isoformat()}").json()
    assert usage["totals"]["recontact"]["rate"] == 0.6
    assert {c["client_id"]: c["recontact"]["rate"] for c in usage["clients"]} == {"acme": 2 / 3, "globex": 0.5}
    app_client.post("/logout", data={"csrf_token": csrf_token(app_client, "/")})
    assert login(app_client, "acme@example.com").status_code == 303
    own = app_client.get("/api/v1/stats?client=globex").json()["recontact"]["totals"]
    assert (own["resolved"], own["recontacted"]) == (3, 2)


def test_a_session_beyond_the_cap_counts_its_latest_tickets_and_says_so(app_client, monkeypatch):
    """A customer with more tickets than the cap (a shared conversation id: a million tickets) is
    summarised over its newest ones, marked `capped`; first and last contact stay exact."""
    from collector_api.store.logs import sessions
    monkeypatch.setattr(sessions, "SESSION_COUNT_CAP", 3)
    monkeypatch.setattr(sessions, "LIST_SUMMARY_CAP", 3)
    assert login(app_client, "provider@example.com").status_code == 303
    by_key = {s["session_key"]: s for s in app_client.get("/api/v1/sessions").json()["sessions"]}
    acme, globex = by_key[ACME_KEY], by_key[GLOBEX_KEY]
    assert (acme["tickets"], acme["capped"]) == (3, True)  # 5 in the range: counted
    assert (acme["success"], acme["partial"], acme["failed"], acme["resolved"]) == (1, 1, 1, 1)
    assert acme["open_reviews"] == 2 and round(float(acme["cost_usd"]), 2) == 0.06
    assert acme["first_contact"] < acme["last_contact"]
    assert (datetime.now(UTC) - datetime.fromisoformat(acme["first_contact"])).days == 8  # exact
    assert (globex["tickets"], globex["capped"]) == (3, False)  # exactly the cap: every ticket
    one = app_client.get(f"/api/v1/sessions/{ACME_KEY}").json()["summary"]  # all time: 6 tickets
    assert (one["tickets"], one["capped"]) == (3, True)
    assert (datetime.now(UTC) - datetime.fromisoformat(one["first_contact"])).days == 45  # A-OLD
    page = app_client.get("/sessions")
    assert page.status_code == 200 and ">3+" in page.text.replace(" ", "")
    assert "count the latest 3" in app_client.get(f"/sessions/{ACME_KEY}").text


def _expected_order(dsn: str, client: str | None) -> list[str]:
    """Brute force: every session with a ticket in the last 30 days, latest contact first (ties: higher id)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT session_key, max(executed_at) AS at, max(id) FILTER (WHERE true) FROM workflow_logs w"
            " WHERE executed_at >= now() - interval '30 days' AND session_key IS NOT NULL"
            " AND (%s::text IS NULL OR client_id = %s) GROUP BY client_id, session_key", (client, client)).fetchall()
        last = {k: conn.execute("SELECT max(id) FROM workflow_logs WHERE session_key = %s AND executed_at = %s",
                                (k, at)).fetchone()[0] for k, at, _ in rows}
    return [k for k, at, _ in sorted(rows, key=lambda r: (r[1], last[r[0]]), reverse=True)]


@pytest.mark.parametrize("who", ["acme@example.com", "provider@example.com"])
def test_a_customer_with_many_recent_tickets_does_not_hide_the_others(app_client, loaded_db, monkeypatch, who):
    """The walk folds windows of logs into sessions: a customer whose 60 tickets are the newest
    (the head of the walk) is met once, every other session still comes, once, in last-contact
    order (two customers tie on the same instant), through small growing windows and a page
    budget (3 logs of sessions not met yet) that ends pages early with a cursor."""
    from collector_api.store.logs import sessions
    monkeypatch.setattr(sessions, "FIRST_WINDOW", 2)
    monkeypatch.setattr(sessions, "MAX_WINDOW", 8)
    monkeypatch.setattr(sessions, "MAX_WALK_LOGS", 3)
    dsn = loaded_db[0]
    docs = [_customer("acme", f"W{i}", 0.01 + i * 0.001, "[email:000000000bad]") for i in range(60)]
    docs += [_customer("acme", f"T{i}", 2.5, f"[email:0000000000t{i}]") for i in range(2)]  # the same instant
    docs += [_customer("acme", f"O{i}", 3 + i * 0.4, f"[email:00000000000{i}]") for i in range(5)]
    docs += [_customer("globex", "G-W", 0.005, "[email:000000000bad]")]
    store_logs(dsn, docs)
    assert login(app_client, who).status_code == 303
    listed, after, pages, early = [], None, 0, 0
    while pages < 40:
        r = app_client.get("/api/v1/sessions?limit=4" + (f"&after={after}" if after else "")).json()
        listed += [s["session_key"] for s in r["sessions"]]
        early += bool(r["next_cursor"]) and len(r["sessions"]) < 4
        pages, after = pages + 1, r["next_cursor"]
        if not after:
            break
    assert listed == _expected_order(dsn, "acme" if who.startswith("acme") else None)
    assert early >= 1  # a page that spent its budget ended early with a cursor: nothing lost


def test_a_sessions_timeline_pages_oldest_first_without_repeats(app_client, monkeypatch):
    from collector_api.store.logs import sessions
    monkeypatch.setattr(sessions, "TIMELINE_PAGE", 4)
    assert login(app_client, "acme@example.com").status_code == 303
    first = app_client.get(f"/api/v1/sessions/{ACME_KEY}").json()
    assert len(first["tickets"]) == 4 and first["next_cursor"] and first["summary"]["tickets"] == 6
    second = app_client.get(f"/api/v1/sessions/{ACME_KEY}?after={first['next_cursor']}").json()
    assert len(second["tickets"]) == 2 and second["next_cursor"] is None
    tickets = first["tickets"] + second["tickets"]
    assert [t["ticket_id"] for t in tickets] == ["A-OLD", "A-5", "A-4", "A-3", "A-2", "A-1"]
    assert second["tickets"][0]["days_since_previous"] is None  # its previous ticket is on the page before
    assert 'id="next-page"' in app_client.get(f"/sessions/{ACME_KEY}").text
