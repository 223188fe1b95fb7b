"""`flusso-obs datasets`: create from a search (the viewer's filter language), from ids, list,
export as JSON lines, delete; a bad filter or an empty selection names the problem."""
from __future__ import annotations

import json

import psycopg

from tests.viewer.helpers import experiment_log, make_log, store_logs

from .helpers import cli


def test_datasets_create_list_export_delete(db_dsn):
    ids = store_logs(db_dsn, [make_log("acme", "C-1", status="FAILED"), make_log("acme", "C-2"),
                              make_log("globex", "C-3", status="FAILED")])
    done = cli("datasets", "create", "--client", "acme", "--name", "hard-cases", "--from-search", "status=FAILED",
               dsn=db_dsn)
    assert done.returncode == 0, done.stderr
    assert "created dataset 'hard-cases' of acme with 1 items" in done.stdout
    by_ids = cli("datasets", "create", "--client", "acme", "--name", "picked", "--ids", f"{ids[1]},{ids[2]}",
                 dsn=db_dsn)
    assert by_ids.returncode == 0 and "with 1 items" in by_ids.stdout  # globex's id copies nothing
    listing = cli("datasets", "list", "--client", "acme", dsn=db_dsn)
    assert "hard-cases" in listing.stdout and "picked" in listing.stdout
    export = cli("datasets", "export", "--client", "acme", "--name", "hard-cases", dsn=db_dsn)
    [line] = [json.loads(x) for x in export.stdout.splitlines()]
    assert line["source"]["ticket_id"] == "C-1" and line["expected_source"] == "draft"
    bad = cli("datasets", "create", "--client", "acme", "--name", "x", "--from-search", "status=NOPE", dsn=db_dsn)
    assert bad.returncode == 2 and "status" in bad.stderr
    none = cli("datasets", "create", "--client", "acme", "--name", "y", "--from-search", "ticket=ZZZ", dsn=db_dsn)
    assert none.returncode == 2 and "not created" in none.stderr
    taken = cli("datasets", "create", "--client", "acme", "--name", "picked", "--ids", str(ids[0]), dsn=db_dsn)
    assert taken.returncode == 2 and "already exists" in taken.stderr
    gone = cli("datasets", "delete", "--client", "acme", "--name", "picked", dsn=db_dsn)
    assert gone.returncode == 0 and "deleted dataset 'picked' of acme and its 1 items" in gone.stdout
    assert "picked" not in cli("datasets", "list", dsn=db_dsn).stdout
    # a dataset with an experiment: deleted, its items kept as the experiment's snapshot
    with psycopg.connect(db_dsn) as conn:
        dataset_id, item_id = conn.execute("SELECT d.id, i.id FROM datasets d JOIN dataset_items i"
                                           " ON i.dataset_id = d.id WHERE d.name = 'hard-cases'").fetchone()
    store_logs(db_dsn, [experiment_log("acme", "C-1", {"id": "c" * 32, "name": "prompt-v7", "dataset": "hard-cases",
                                                       "dataset_id": dataset_id, "item_id": item_id}, draft="new")])
    kept = cli("datasets", "delete", "--client", "acme", "--name", "hard-cases", dsn=db_dsn)
    assert kept.returncode == 0, kept.stderr
    assert "its 1 items stay as the snapshot of its 1 experiment(s) ('prompt-v7')" in kept.stdout
    assert "hard-cases" not in cli("datasets", "list", dsn=db_dsn).stdout
    missing = cli("datasets", "delete", "--client", "acme", "--name", "hard-cases", dsn=db_dsn)
    assert missing.returncode == 2 and "no dataset 'hard-cases' of acme" in missing.stderr
