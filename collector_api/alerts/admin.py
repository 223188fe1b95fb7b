"""Creating and listing alert rules, for the viewer's alerts page and `flusso-obs alerts`: the
rule (validated with collector_api.alerts.rules) is stored with a new salt by
collector_api.store.alerts.rules, and its signing secret derived once, to be shown.
"""
from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from collector_api.alerts.rules import (
    AlertRule,
    AlertRuleError,
    NewAlertRule,
    RuleSpec,
    new_salt,
    rule_from_row,
    signing_secret,
)
from collector_api.store.alerts.rules import UnknownTenant, insert_rule, rule_rows


async def create_rule(pool: AsyncConnectionPool, spec: RuleSpec, master_key: str) -> NewAlertRule:
    """Store `spec`; returns it with its signing secret (the only time it is available).
    AlertRuleError (field `client`) when the rule names an unknown tenant."""
    salt = new_salt()
    try:
        row = await insert_rule(pool, spec, salt)
    except UnknownTenant as exc:
        raise AlertRuleError("client", f"no tenant {exc.client_id!r} (see `flusso-obs keys list`)") from None
    return NewAlertRule(rule=rule_from_row(row), secret=signing_secret(master_key, salt))


async def list_rules(pool: AsyncConnectionPool) -> list[AlertRule]:
    """Every rule, oldest first."""
    return [rule_from_row(r) for r in await rule_rows(pool)]
