"""Evaluators (migrations 0019, 0022), SQL only: insert, list, new version, enable/disable,
delete (a tombstone: `deleted_at`; the scores stay), and each judge's monthly spend.
Validation is collector_api.evals.spec; the CLI and the provider's evaluators
page store through collector_api.evals.admin.
"""
from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, StoreError, owner_connection, scoped_transaction

EVALUATOR_COLUMNS = ("id, name, kind, version, client_id, sample_rate, filter_workflow, filter_status, params,"
                     " monthly_cost_cap_usd, enabled, created_at")


class UnknownTenant(StoreError):
    def __init__(self, client_id: str):
        super().__init__(f"no tenant {client_id!r}")
        self.client_id = client_id


class DuplicateEvaluator(StoreError):
    def __init__(self, name: str, deleted: bool = False):
        super().__init__(f"an evaluator named {name!r} exists" + (" (deleted)" if deleted else ""))
        self.name, self.deleted = name, deleted


class EvaluatorFields(Protocol):
    """What a new evaluator brings (collector_api.evals.spec.EvaluatorSpec, validated)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def sample_rate(self) -> float: ...
    @property
    def filter_workflow(self) -> str | None: ...
    @property
    def filter_status(self) -> str | None: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def monthly_cost_cap_usd(self) -> float | None: ...


async def insert_evaluator(pool: AsyncConnectionPool, spec: EvaluatorFields) -> dict:
    """Store `spec`; the stored row. UnknownTenant, DuplicateEvaluator."""
    async with owner_connection(pool) as conn, conn.transaction():
        if spec.client_id is not None:
            known = await (await conn.execute("SELECT 1 FROM tenants WHERE client_id = %s",
                                              (spec.client_id,))).fetchone()
            if known is None:
                raise UnknownTenant(spec.client_id)
        row = await (await conn.execute(
            "INSERT INTO evaluators (name, kind, client_id, sample_rate, filter_workflow, filter_status, params,"
            " monthly_cost_cap_usd) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING"
            f" RETURNING {EVALUATOR_COLUMNS}",
            (spec.name, spec.kind, spec.client_id, spec.sample_rate, spec.filter_workflow, spec.filter_status,
             Jsonb(spec.params), spec.monthly_cost_cap_usd))).fetchone()
        if row is None:
            old = await (await conn.execute("SELECT deleted_at FROM evaluators WHERE name = %s",
                                            (spec.name,))).fetchone()
            raise DuplicateEvaluator(spec.name, deleted=old is not None and old["deleted_at"] is not None)
        return row


async def evaluator_rows(pool: AsyncConnectionPool, *, enabled_only: bool = False) -> list[dict]:
    """Every evaluator not deleted (EVALUATOR_COLUMNS), oldest first."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        return await (await conn.execute(
            f"SELECT {EVALUATOR_COLUMNS} FROM evaluators WHERE deleted_at IS NULL AND (enabled OR NOT %s) ORDER BY id",
            (enabled_only,))).fetchall()


async def evaluator_by_name(pool: AsyncConnectionPool, name: str) -> dict | None:
    """The evaluator named `name` (None when there is none, or it was deleted)."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        return await (await conn.execute(
            f"SELECT {EVALUATOR_COLUMNS} FROM evaluators WHERE name = %s AND deleted_at IS NULL", (name,))).fetchone()


async def bump_version(pool: AsyncConnectionPool, name: str) -> dict | None:
    """The evaluator with its version raised by one (new logs and reruns score under it)."""
    async with owner_connection(pool) as conn, conn.transaction():
        return await (await conn.execute(
            "UPDATE evaluators SET version = version + 1 WHERE name = %s AND deleted_at IS NULL"
            f" RETURNING {EVALUATOR_COLUMNS}",
            (name,))).fetchone()


async def set_enabled(pool: AsyncConnectionPool, name: str, enabled: bool) -> bool:
    """Enable or disable the evaluator `name`; False when there is none (or it was deleted)."""
    async with owner_connection(pool) as conn, conn.transaction():
        cur = await conn.execute("UPDATE evaluators SET enabled = %s WHERE name = %s AND deleted_at IS NULL",
                                 (enabled, name))
        return cur.rowcount == 1


async def mark_deleted(pool: AsyncConnectionPool, name: str) -> bool:
    """Delete the evaluator `name`: it stops and leaves the lists; its row stays as a tombstone
    (its name is not reused), its scores and outcomes stay. False when there is none."""
    async with owner_connection(pool) as conn, conn.transaction():
        cur = await conn.execute("UPDATE evaluators SET deleted_at = now(), enabled = false"
                                 " WHERE name = %s AND deleted_at IS NULL", (name,))
        return cur.rowcount == 1



async def spend_rows(pool: AsyncConnectionPool, month: date) -> dict[int, dict]:
    """evaluator id -> {cost_usd, calls, invalid, errors, capped} for `month` (its first day)."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        rows = await (await conn.execute(
            "SELECT evaluator_id, cost_usd, calls, invalid, errors, capped FROM evaluator_spend WHERE month = %s",
            (month,))).fetchall()
    return {r["evaluator_id"]: r for r in rows}
