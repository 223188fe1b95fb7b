"""Reading datasets, their items and the experiments run on them.

Like every read module, each statement filters on the tenant AND runs in a scoped transaction
(row-level security). An experiment's runs are its logs (workflow_logs.experiment_id, a partial
index that holds experiment logs only), the latest log per dataset item. SQL + psycopg only.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition

ITEM_COLUMNS = ("id, client_id, dataset_id, log_id, ticket_id, executed_at, status, input, expected_output,"
                " expected_source, verdict, flags")
_DATASET_COLUMNS = "id, client_id, name, source, source_query, item_count, created_by, created_at"


def _prefixed(scope: Scope, client_id: str | None, alias: str) -> tuple[sql.Composable, list]:
    tenant, params = tenant_condition(scope, client_id)
    return (sql.SQL(alias + ".") + tenant if params else tenant), params


async def list_datasets(pool: AsyncConnectionPool, scope: Scope, client_id: str | None = None,
                        limit: int = 500) -> list[dict]:
    """The datasets visible in `scope` (a provider may narrow to `client_id`), newest first, each
    with how many experiments were run on it."""
    tenant, params = _prefixed(scope, client_id, "d")
    query = sql.SQL("SELECT {columns}, (SELECT count(*) FROM experiments e WHERE e.client_id = d.client_id"
                    " AND e.dataset_id = d.id) AS experiments FROM datasets d WHERE d.deleted_at IS NULL AND {tenant}"
                    " ORDER BY d.created_at DESC, d.id DESC LIMIT %s").format(
        columns=sql.SQL(", ".join("d." + c.strip() for c in _DATASET_COLUMNS.split(","))), tenant=tenant)
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        return await (await conn.execute(query, [*params, limit])).fetchall()


async def get_dataset(pool: AsyncConnectionPool, scope: Scope, client_id: str, name: str) -> dict | None:
    """The dataset `name` of `client_id`, or None (absent, deleted, or not readable in `scope`)."""
    tenant, params = tenant_condition(scope, client_id)
    query = sql.SQL("SELECT {columns} FROM datasets WHERE client_id = %s AND name = %s AND deleted_at IS NULL"
                    " AND {tenant}").format(
        columns=sql.SQL(_DATASET_COLUMNS), tenant=tenant)
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        return await (await conn.execute(query, [client_id, name, *params])).fetchone()


async def list_items(pool: AsyncConnectionPool, scope: Scope, dataset: dict, *, after: int = 0,
                     limit: int = 100) -> list[dict]:
    """Items of `dataset` (a row of get_dataset) with id > `after`, in id order (keyset pages)."""
    tenant, params = tenant_condition(scope, dataset["client_id"])
    query = sql.SQL("SELECT {columns} FROM dataset_items WHERE dataset_id = %s AND id > %s AND {tenant}"
                    " ORDER BY id LIMIT %s").format(columns=sql.SQL(ITEM_COLUMNS), tenant=tenant)
    async with scoped_transaction(pool, narrowed(scope, dataset["client_id"])) as conn:
        return await (await conn.execute(query, [dataset["id"], after, *params, limit])).fetchall()


async def iter_items(pool: AsyncConnectionPool, scope: Scope, dataset: dict, *,
                     batch: int = 1000) -> AsyncIterator[dict]:
    """Every item of `dataset`, in id order, in keyset batches (the JSONL export)."""
    after = 0
    while True:
        rows = await list_items(pool, scope, dataset, after=after, limit=batch)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1]["id"]


# --- experiments ----------------------------------------------------------------------------

# A deleted dataset's experiments keep its name and items (`dataset_deleted`: migration 0022).
_EXPERIMENT_COLUMNS = ("e.client_id, e.id, e.name, e.dataset_id, e.dataset_name, e.created_at,"
                       " d.name AS dataset, d.item_count, d.deleted_at IS NOT NULL AS dataset_deleted")


async def list_experiments(pool: AsyncConnectionPool, scope: Scope, client_id: str | None = None, *,
                           dataset_id: int | None = None, limit: int = 200) -> list[dict]:
    """Experiments visible in `scope`, newest first, with their dataset's name and size (None when
    the tagged dataset is not one of the tenant's)."""
    tenant, params = _prefixed(scope, client_id, "e")
    extra = sql.SQL(" AND e.dataset_id = %s") if dataset_id is not None else sql.SQL("")
    query = sql.SQL("SELECT {columns} FROM experiments e LEFT JOIN datasets d ON d.id = e.dataset_id"
                    " AND d.client_id = e.client_id WHERE {tenant}{extra}"
                    " ORDER BY e.created_at DESC, e.id LIMIT %s").format(
        columns=sql.SQL(_EXPERIMENT_COLUMNS), tenant=tenant, extra=extra)
    values = [*params, *([dataset_id] if dataset_id is not None else []), limit]
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        return await (await conn.execute(query, values)).fetchall()


async def get_experiment(pool: AsyncConnectionPool, scope: Scope, experiment_id: str) -> dict | None:
    """The experiment `experiment_id` as `scope` may read it, or None (absent or another tenant's).
    A provider sees any tenant's (the id is unique per tenant: the newest wins if two share it)."""
    tenant, params = _prefixed(scope, None, "e")
    query = sql.SQL("SELECT {columns} FROM experiments e LEFT JOIN datasets d ON d.id = e.dataset_id"
                    " AND d.client_id = e.client_id WHERE e.id = %s AND {tenant}"
                    " ORDER BY e.created_at DESC LIMIT 1").format(columns=sql.SQL(_EXPERIMENT_COLUMNS), tenant=tenant)
    async with scoped_transaction(pool, scope) as conn:
        return await (await conn.execute(query, [experiment_id, *params])).fetchone()


# The latest log of each of the dataset's items in the experiment (retries keep the last).
_RUNS = ("SELECT DISTINCT ON (w.dataset_item_id) w.dataset_item_id AS item_id, w.id AS log_id, w.status,"
         " w.cost_usd, w.execution_time_seconds{draft} FROM workflow_logs w"
         " WHERE w.client_id = %s AND w.experiment_id = %s AND w.dataset_item_id IS NOT NULL{items}"
         " AND {tenant} ORDER BY w.dataset_item_id, w.executed_at DESC, w.id DESC")


async def experiment_runs(pool: AsyncConnectionPool, scope: Scope, experiment: dict,
                          item_ids: list[int] | None = None) -> dict[int, dict]:
    """item id -> its run in `experiment` (log id, status, cost, latency), for every item of the
    experiment's dataset, or, with `item_ids`, for those items only and with their new draft."""
    client_id = experiment["client_id"]
    tenant, params = _prefixed(scope, client_id, "w")
    if item_ids is None:
        items = sql.SQL(" AND w.dataset_item_id IN (SELECT i.id FROM dataset_items i WHERE i.dataset_id = %s"
                        " AND i.client_id = %s)")
        values = [client_id, experiment["id"], experiment["dataset_id"], client_id, *params]
        draft = sql.SQL("")
    else:
        items = sql.SQL(" AND w.dataset_item_id = ANY(%s::int8[])")
        values = [client_id, experiment["id"], item_ids, *params]
        draft = sql.SQL(", w.log_data #>> '{trace,output,draft}' AS draft")
    query = sql.SQL(_RUNS).format(tenant=tenant, items=items, draft=draft)
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rows = await (await conn.execute(query, values)).fetchall()
    return {r["item_id"]: r for r in rows}


def _all_runs(scope: Scope, experiment: dict, alias: str, *, of_items: bool = True) -> tuple[sql.Composable, list]:
    """The experiment's latest run per item, as a subquery named `alias`: of the items of its
    dataset, or (`of_items=False`, for a caller that joins the items itself) of any item id."""
    tenant, params = _prefixed(scope, experiment["client_id"], "w")
    items, item_params = sql.SQL(""), []
    if of_items:
        items = sql.SQL(" AND w.dataset_item_id IN (SELECT i.id FROM dataset_items i WHERE i.dataset_id = %s"
                        " AND i.client_id = %s)")
        item_params = [experiment["dataset_id"], experiment["client_id"]]
    query = sql.SQL("({runs}) {alias}").format(
        runs=sql.SQL(_RUNS).format(tenant=tenant, items=items, draft=sql.SQL("")), alias=sql.Identifier(alias))
    return query, [experiment["client_id"], experiment["id"], *item_params, *params]


# Totals of an experiment's runs, aggregated where they are (10,000 runs -> one row).
_TOTALS = ("SELECT count(*) AS ran, count(*) FILTER (WHERE r.status = 'SUCCESS') AS success,"
           " count(*) FILTER (WHERE r.status = 'PARTIAL') AS partial,"
           " count(*) FILTER (WHERE r.status = 'FAILED') AS failed, sum(r.cost_usd) AS cost_usd,"
           " avg(r.cost_usd) AS mean_cost_usd, avg(r.execution_time_seconds) AS mean_latency_s,"
           " percentile_disc(0.5) WITHIN GROUP (ORDER BY r.execution_time_seconds) AS p50_latency_s,"
           " percentile_disc(0.95) WITHIN GROUP (ORDER BY r.execution_time_seconds) AS p95_latency_s FROM {runs}")


async def experiment_totals(pool: AsyncConnectionPool, scope: Scope, experiment: dict) -> dict:
    """Runs, outcome counts, cost (sum, mean) and latency (mean, p50, p95) over every item."""
    runs, params = _all_runs(scope, experiment, "r")
    async with scoped_transaction(pool, narrowed(scope, experiment["client_id"])) as conn:
        return await (await conn.execute(sql.SQL(_TOTALS).format(runs=runs), params)).fetchone()


# A run's figures that two experiments are compared on, per item (an item without a run: status
# 0, "not run", below FAILED; its other figures unknown).
FIGURES = {
    "status": "CASE {r}.status WHEN 'SUCCESS' THEN 3 WHEN 'PARTIAL' THEN 2 WHEN 'FAILED' THEN 1 ELSE 0 END",
    "cost_usd": "{r}.cost_usd",
    "latency_s": "{r}.execution_time_seconds",
}
_VERDICT = ("count(*) FILTER (WHERE {x} IS NOT NULL AND {y} IS NOT NULL AND"
            " abs({y} - {x}) > 1e-12 + 1e-9 * greatest(abs({x}), abs({y})) AND {y} {op} {x})")


def compare_query(scope: Scope, a: dict, b: dict, figures: dict[str, bool]) -> tuple[sql.Composable, list]:
    """The statement of compare_counts and its parameters."""
    runs_a, params_a = _all_runs(scope, a, "ra", of_items=False)  # the items are joined below
    runs_b, params_b = _all_runs(scope, b, "rb", of_items=False)
    columns = []
    for name, lower in figures.items():
        x, y = (sql.SQL(FIGURES[name].format(r=r)) for r in ("ra", "rb"))
        better, worse = ("<", ">") if lower else (">", "<")
        for label, op in (("better", better), ("worse", worse)):
            columns.append(sql.SQL(_VERDICT + " AS {label}").format(
                x=x, y=y, op=sql.SQL(op), label=sql.Identifier(f"{name}.{label}")))
        columns.append(sql.SQL("count(*) FILTER (WHERE {x} IS NULL OR {y} IS NULL) AS {label}").format(
            x=x, y=y, label=sql.Identifier(f"{name}.unknown")))
    query = sql.SQL("SELECT count(*) AS items, {columns} FROM dataset_items i LEFT JOIN {a} ON ra.item_id = i.id"
                    " LEFT JOIN {b} ON rb.item_id = i.id WHERE i.dataset_id = %s AND i.client_id = %s").format(
        columns=sql.SQL(", ").join(columns), a=runs_a, b=runs_b)
    return query, [*params_a, *params_b, a["dataset_id"], a["client_id"]]


async def compare_counts(pool: AsyncConnectionPool, scope: Scope, a: dict, b: dict,
                         figures: dict[str, bool]) -> dict[str, dict[str, int]]:
    """For each of `figures` (name in FIGURES -> lower is better), over every item of the dataset:
    how many items B did better, worse, the same as A, or unknown (a figure missing)."""
    query, params = compare_query(scope, a, b, figures)
    async with scoped_transaction(pool, narrowed(scope, a["client_id"])) as conn:
        row = await (await conn.execute(query, params)).fetchone()
    out = {}
    for name in figures:
        counts = {k: row[f"{name}.{k}"] for k in ("better", "worse", "unknown")}
        counts["same"] = row["items"] - sum(counts.values())
        out[name] = {k: counts[k] for k in ("better", "worse", "same", "unknown")}
    return out
