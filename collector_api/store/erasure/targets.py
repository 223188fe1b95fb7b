"""THE list of every table that holds a ticket's data, and how an erasure finds its rows.

An erasure (and a tenant's retention) first resolves what was asked into items: one per log found
(log_id, executed_at, trace_id, ticket_id), plus one per asked trace that has no log yet. Then it
erases batch by batch; each batch runs every `per="item"` target below in ONE transaction, with
the batch's items as parameters, and adds each target's rowcount to the receipt under its `kind`.
The `per="request"` targets run once, in the final transaction, with only what was asked.

A table added later registers here with one entry (its SQL must filter on %(client)s):

    Target("session_rows", "DELETE FROM customer_sessions WHERE client_id = %(client)s"
                           " AND session_key = ANY(%(ticket_ids)s::text[])")

Parameters of every statement (arrays are never NULL, possibly empty; cast them: ::text[]):
  %(client)s       the tenant
  %(log_ids)s      bigint[]: the batch's workflow_logs ids      %(times)s       their executed_at
  %(trace_ids)s    text[]:   the batch's trace ids              %(ticket_ids)s  their ticket ids
  %(needles)s      text[]:   JSON-quoted ids and the tokens (for text/bytea bodies that cite them)
  %(patterns)s     text[]:   LIKE patterns of the asked tokens ('%[email:ab12...]%')

`role="tenant"` statements run as the row-level-security role in a transaction scoped to the
tenant; `role="owner"` ones (provider-only tables such as alert deliveries) as the owning role,
still filtered on the tenant. `retention=True`: also run by a tenant's retention. SQL only.
"""
from __future__ import annotations

from dataclasses import dataclass

from collector_api.store.datasets.writes import ERASE_ITEMS


@dataclass(frozen=True)
class Target:
    kind: str            # the receipt's name for the rows this erases
    sql: str             # a DELETE filtered on %(client)s
    per: str = "item"    # "item": every batch; "request": once, with what was asked
    role: str = "tenant"  # "tenant" (RLS role, tenant scope) or "owner" (provider-only tables)
    retention: bool = False  # a tenant's retention runs it too (per-item targets only)


TARGETS: tuple[Target, ...] = (
    # Reviews first: they name their log by id.
    Target("reviews", "DELETE FROM ticket_reviews WHERE client_id = %(client)s"
                      " AND log_id = ANY(%(log_ids)s::int8[])",
           retention=True),
    Target("review_states", "DELETE FROM ticket_review_state WHERE client_id = %(client)s"
                            " AND log_id = ANY(%(log_ids)s::int8[])", retention=True),
    Target("workflow_logs", "DELETE FROM workflow_logs w USING unnest(%(log_ids)s::int8[], %(times)s::timestamptz[])"
                            " AS k(id, at) WHERE w.client_id = %(client)s AND w.id = k.id AND w.executed_at = k.at",
           retention=True),
    Target("staged_spans", "DELETE FROM trace_spans WHERE client_id = %(client)s"
                           " AND trace_id = ANY(%(trace_ids)s::text[])"),
    Target("trace_states", "DELETE FROM trace_state WHERE client_id = %(client)s"
                           " AND trace_id = ANY(%(trace_ids)s::text[])"),
    # Online evaluations' scores and outcomes (migration 0019): the RLS role may only read them.
    Target("evaluation_scores", "DELETE FROM evaluation_scores WHERE client_id = %(client)s"
                                " AND log_id = ANY(%(log_ids)s::int8[])", role="owner", retention=True),
    Target("evaluation_outcomes", "DELETE FROM evaluation_outcomes WHERE client_id = %(client)s"
                                  " AND log_id = ANY(%(log_ids)s::int8[])", role="owner", retention=True),
    # Dataset items are copies of tickets (migration 0020): the erased logs' and tickets' copies.
    Target("dataset_items", ERASE_ITEMS),
    # A notification whose body cites one of the batch's tickets, traces or tokens.
    Target("alert_deliveries", "DELETE FROM alert_deliveries WHERE client_id = %(client)s AND EXISTS ("
                               " SELECT 1 FROM unnest(%(needles)s::text[]) n"
                               " WHERE position(convert_to(n, 'UTF8') IN body) > 0)", role="owner"),
    # Reviews of OTHER tickets whose note or corrected draft carries an asked token.
    Target("reviews_citing", "DELETE FROM ticket_reviews WHERE client_id = %(client)s"
                             " AND cardinality(%(patterns)s::text[]) > 0 AND (note LIKE ANY(%(patterns)s::text[])"
                             " OR corrected_draft LIKE ANY(%(patterns)s::text[]))",
           per="request"),
    Target("review_states_citing", "DELETE FROM ticket_review_state WHERE client_id = %(client)s"
                                   " AND cardinality(%(patterns)s::text[]) > 0"
                                   " AND corrected_draft LIKE ANY(%(patterns)s::text[])",
           per="request"),
)

KINDS: tuple[str, ...] = tuple(dict.fromkeys(t.kind for t in TARGETS))
