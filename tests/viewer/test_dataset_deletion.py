"""Deleting a dataset that experiments were run on: its experiments stay viewable (items, diffs,
totals, comparison) marked "dataset deleted", the dataset leaves the lists and can no longer be
fetched or run, its name is free again; a dataset without experiments goes with its items. A
hostile tenant can neither delete it nor see the experiments."""
from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from collector_api.store.core.db import create_pool
from collector_api.store.datasets.writes import Deleted, delete_dataset

from .helpers import ARTIFACTS, browser_login, experiment_log, login, make_key, post_review, run_async, store_logs

A, B = "a" * 32, "b" * 32


def _post(client, key: str, body: dict):
    return client.post("/api/v1/datasets", content=json.dumps(body).encode(),
                       headers={"Content-Type": "application/json", "X-API-Key": key})


def _delete(dsn: str, client_id: str, name: str) -> Deleted | None:
    async def go():
        async with create_pool(dsn, max_size=1) as pool:
            return await delete_dataset(pool, client_id, name)
    return run_async(go())


def _item_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM dataset_items").fetchone()[0]


def _dataset_with_two_experiments(app_client, loaded_db) -> tuple[str, dict, str]:
    dsn, _, ids = loaded_db
    login(app_client, "acme@example.com")
    assert post_review(app_client, ids["A-2"], verdict="incorrect", corrected_draft="Your order ships today.",
                       ).status_code == 303
    assert post_review(app_client, ids["A-3"], verdict="incorrect").status_code == 303
    app_client.cookies.clear()
    key = make_key(dsn, "acme", "read")
    made = _post(app_client, key, {"name": "exp", "search": "verdict=incorrect"}).json()
    items = app_client.get("/api/v1/datasets/exp/items", headers={"X-API-Key": key}).json()["items"]
    tags = {"dataset_id": made["id"], "dataset": "exp"}
    store_logs(dsn, [
        experiment_log("acme", "A-2", {"id": A, "name": "prompt-v6", **tags, "item_id": items[0]["id"]},
                       draft="Your order ships soon.", status="PARTIAL"),
        experiment_log("acme", "A-2", {"id": B, "name": "prompt-v7", **tags, "item_id": items[0]["id"]},
                       draft="Your order ships today."),
    ])
    return dsn, ids, key


def test_experiments_stay_viewable_after_their_dataset_is_deleted(app_client, loaded_db):
    dsn, _, key = _dataset_with_two_experiments(app_client, loaded_db)
    hdr = {"X-API-Key": key}
    before = app_client.get(f"/api/v1/experiments/{A}", headers=hdr).json()
    assert _delete(dsn, "globex", "exp") is None  # another tenant's name: nothing happens
    assert app_client.get("/api/v1/datasets/exp", headers=hdr).status_code == 200
    assert _delete(dsn, "acme", "exp") == Deleted(items=2, experiments=["prompt-v6", "prompt-v7"])
    # the dataset is gone from every dataset read and cannot be fetched for a new run
    assert app_client.get("/api/v1/datasets/exp", headers=hdr).status_code == 404
    assert app_client.get("/api/v1/datasets/exp/items", headers=hdr).status_code == 404
    assert app_client.get("/api/v1/datasets/exp/export.jsonl", headers=hdr).status_code == 404
    assert "exp" not in [d["name"] for d in app_client.get("/api/v1/datasets", headers=hdr).json()["datasets"]]
    assert _delete(dsn, "acme", "exp") is None  # deleted already
    # its experiments: the same items, diffs and totals, marked
    after = app_client.get(f"/api/v1/experiments/{A}", headers=hdr).json()
    assert after["experiment"]["dataset_deleted"] is True and after["experiment"]["dataset"] == "exp"
    assert after["items"] == before["items"] and after["totals"] == before["totals"]
    assert len(after["items"]) == 2 and after["totals"]["ran"] == 1
    listing = app_client.get("/api/v1/experiments", headers=hdr).json()["experiments"]
    assert {e["name"]: e["dataset_deleted"] for e in listing} == {"prompt-v6": True, "prompt-v7": True}
    cmp = app_client.get(f"/api/v1/experiments/compare?a={A}&b={B}", headers=hdr)
    assert cmp.status_code == 200 and cmp.json()["summary"]["status"]["better"] == 1
    login(app_client, "acme@example.com")
    page = app_client.get(f"/experiments/{A}").text
    assert 'data-field="dataset-deleted"' in page and 'href="/datasets/exp' not in page
    assert 'data-field="dataset-deleted"' in app_client.get("/experiments").text
    assert 'data-field="dataset-deleted"' in app_client.get(f"/experiments/compare?a={A}&b={B}").text
    app_client.cookies.clear()
    # the name is free again: a new dataset, and the old experiments keep their own items
    again = _post(app_client, key, {"name": "exp", "search": "status=SUCCESS"})
    assert again.status_code == 201, again.text
    assert app_client.get(f"/api/v1/experiments/{A}", headers=hdr).json()["items"] == before["items"]
    # a hostile tenant sees none of it
    globex = {"X-API-Key": make_key(dsn, "globex", "read")}
    assert app_client.get(f"/api/v1/experiments/{A}", headers=globex).status_code == 404
    assert app_client.get("/api/v1/experiments", headers=globex).json() == {"experiments": []}


def test_a_dataset_without_experiments_goes_with_its_items(app_client, loaded_db):
    dsn, _, ids = loaded_db
    key = make_key(dsn, "acme", "read")
    assert _post(app_client, key, {"name": "plain", "log_ids": [ids["A-1"], ids["A-4"]]}).status_code == 201
    assert _item_rows(dsn) == 2
    assert _delete(dsn, "acme", "plain") == Deleted(items=2, experiments=[])
    assert _item_rows(dsn) == 0
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM datasets").fetchone()[0] == 0


@pytest.mark.browser
def test_browser_an_experiment_of_a_deleted_dataset(viewer_page, live_server, module_db):
    dsn, _, ids = module_db
    key = make_key(dsn, "acme", "read")
    with httpx.Client(base_url=live_server) as client:
        made = _post(client, key, {"name": "retired", "log_ids": [ids["A-1"], ids["A-2"]]}).json()
        items = client.get("/api/v1/datasets/retired/items", headers={"X-API-Key": key}).json()["items"]
    tags = {"dataset_id": made["id"], "dataset": "retired"}
    store_logs(dsn, [experiment_log("acme", "A-1", {"id": "c" * 32, "name": "prompt-v9", **tags,
                                                    "item_id": items[0]["id"]}, draft="Hello, all fixed now.")])
    assert _delete(dsn, "acme", "retired") == Deleted(items=2, experiments=["prompt-v9"])
    browser_login(viewer_page, live_server, "acme@example.com")
    viewer_page.goto(f"{live_server}/experiments")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.locator("#experiment-table [data-field=dataset-deleted]").count() == 1
    viewer_page.click("#experiment-table a[href='/experiments/" + "c" * 32 + "']")
    viewer_page.wait_for_load_state("networkidle")
    assert viewer_page.locator("h1 [data-field=dataset-deleted]").count() == 1
    assert viewer_page.text_content("#totals .t-items").strip() == "2"
    ARTIFACTS.mkdir(exist_ok=True)
    viewer_page.screenshot(path=str(ARTIFACTS / "experiment-dataset-deleted.png"), full_page=True)
