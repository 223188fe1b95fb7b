"""The tenant condition every read statement carries, in one place.

Row-level security already confines a scoped transaction to its tenant; each statement filters
on the tenant as well, so either guard alone keeps tenants apart. SQL + psycopg only.
"""
from __future__ import annotations

from psycopg import sql

from collector_api.store.core.db import Scope

TenantCondition = tuple[sql.Composable, list[str]]  # the SQL condition and its parameters

_TRUE, _FALSE, _TENANT = sql.SQL("true"), sql.SQL("false"), sql.SQL("client_id = %s")


def tenant_of(scope: Scope, wanted: str | None = None) -> str | None:
    """The one tenant a statement must filter on, or None for a provider looking at all of them.

    A client scope always means its own tenant, whatever it asks for; a provider may narrow
    its view to `wanted`."""
    if not scope.all_tenants:
        return scope.client_id
    return wanted or scope.client_id


def narrowed(scope: Scope, wanted: str | None = None) -> Scope:
    """The transaction scope of a provider narrowing to `wanted` (still read through the provider policy)."""
    if scope.all_tenants and wanted:
        return Scope.provider(wanted)
    return scope


def tenant_condition(scope: Scope, wanted: str | None = None) -> TenantCondition:
    """`client_id = %s` and its parameter; `false` for a client scope without a tenant (it sees
    nothing); `true` for a provider looking at every tenant."""
    tenant = tenant_of(scope, wanted)
    if tenant:
        return _TENANT, [tenant]
    return (_TRUE if scope.all_tenants else _FALSE), []
