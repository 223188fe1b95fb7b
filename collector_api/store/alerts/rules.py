"""Alert rules (migration 0012), SQL only: insert, list, delete, the firing states and the
delivery log. Validation, the window format and the signing secret are collector_api.alerts.rules;
the viewer's alerts page and `flusso-obs alerts` create and list rules through
collector_api.alerts.admin, which stores them here. A rule's salt is stored (unreadable by the
RLS role); its secret never is.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, StoreError, owner_connection, scoped_transaction

RULE_COLUMNS = "id, name, metric, op, threshold, window_s, client_id, webhook_url, slack, min_tickets, created_at"


class UnknownTenant(StoreError):
    """A rule names a tenant that does not exist."""

    def __init__(self, client_id: str):
        super().__init__(f"no tenant {client_id!r}")
        self.client_id = client_id


class RuleFields(Protocol):
    """What a new rule brings (collector_api.alerts.rules.RuleSpec, validated)."""

    @property
    def name(self) -> str: ...
    @property
    def metric(self) -> str: ...
    @property
    def op(self) -> str: ...
    @property
    def threshold(self) -> float: ...
    @property
    def window_s(self) -> int: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def webhook_url(self) -> str: ...
    @property
    def slack(self) -> bool: ...
    @property
    def min_tickets(self) -> int: ...


async def insert_rule(pool: AsyncConnectionPool, spec: RuleFields, salt: bytes) -> dict:
    """Store `spec` with its salt; the stored row (RULE_COLUMNS). UnknownTenant when the rule
    names a tenant that does not exist."""
    async with owner_connection(pool) as conn, conn.transaction():
        if spec.client_id is not None:
            known = await (await conn.execute("SELECT 1 FROM tenants WHERE client_id = %s",
                                              (spec.client_id,))).fetchone()
            if known is None:
                raise UnknownTenant(spec.client_id)
        return await (await conn.execute(
            "INSERT INTO alert_rules (name, metric, op, threshold, window_s, client_id, webhook_url, slack,"
            f" min_tickets, secret_salt) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {RULE_COLUMNS}",
            (spec.name, spec.metric, spec.op, spec.threshold, spec.window_s, spec.client_id, spec.webhook_url,
             spec.slack, spec.min_tickets, salt))).fetchone()


async def rule_rows(pool: AsyncConnectionPool) -> list[dict]:
    """Every rule (RULE_COLUMNS), oldest first (provider scope: the RLS role, which cannot read the salts)."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        return await (await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY id")).fetchall()


async def delete_rule(pool: AsyncConnectionPool, rule_id: int) -> bool:
    """Delete a rule and its states; its deliveries stay in the log (rule_id set to NULL)."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        cur = await conn.execute("DELETE FROM alert_rules WHERE id = %s", (rule_id,))
        return cur.rowcount == 1


@dataclass(frozen=True)
class DeliveryLogEntry:
    delivery_id: str
    rule_id: int | None
    rule_name: str
    client_id: str
    state: str
    status: str
    attempt: int
    at: datetime
    http_status: int | None
    error: str | None
    duration_ms: float


async def list_delivery_log(pool: AsyncConnectionPool, *, limit: int = 200) -> list[DeliveryLogEntry]:
    """The latest webhook attempts, newest first (the log keeps 30 days)."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        rows = await (await conn.execute(
            "SELECT d.id::text AS delivery_id, d.rule_id, d.rule_name, d.client_id, d.state, d.status, a.attempt,"
            " a.at, a.http_status, a.error, a.duration_ms FROM alert_delivery_attempts a"
            " JOIN alert_deliveries d ON d.id = a.delivery_id ORDER BY a.at DESC, a.attempt DESC LIMIT %s",
            (limit,))).fetchall()
    return [DeliveryLogEntry(**r) for r in rows]


async def list_firing(pool: AsyncConnectionPool) -> list[dict]:
    """(rule_id, client_id, value, changed_at) of every firing rule and tenant."""
    async with scoped_transaction(pool, Scope.provider()) as conn:
        return await (await conn.execute(
            "SELECT rule_id, client_id, value, changed_at FROM alert_states WHERE state = 'firing'"
            " ORDER BY changed_at DESC")).fetchall()
