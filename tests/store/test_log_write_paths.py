"""Every function that writes a tenant's workflow logs (an INSERT, or an UPDATE of log_data or
ticket_id: what migration 0018's trigger guards) runs in store.logs.store_lock.store_transaction,
which holds the erasure's per-tenant lock shared on the app's own node (on Citus the trigger's
lock is the worker's, the erasure's the coordinator's). Checked on the source (ast): a new
write path that opens its own transaction fails here, naming itself."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_WRITES_LOGS = re.compile(r"INSERT\s+INTO\s+workflow_logs\b|UPDATE\s+workflow_logs\b(?:\s+\w+)?\s+SET\s"
                          r"(?:(?!\bWHERE\b|\bFROM\b).)*?\b(?:log_data|ticket_id)\s*=", re.I | re.S)
_OPENER = "store_transaction"


def _texts(node: ast.AST) -> list[str]:
    """The string literals under `node`, an f-string's literal parts joined."""
    found = []
    for n in ast.walk(node):
        if isinstance(n, ast.JoinedStr):
            found.append("".join(v.value for v in n.values if isinstance(v, ast.Constant)))
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            found.append(n.value)
    return found


def _modules() -> dict[str, ast.Module]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): ast.parse(p.read_text(encoding="utf-8"))
            for p in (ROOT / "collector_api").rglob("*.py")}


def _functions(tree: ast.Module):
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _names(node: ast.AST) -> set[str]:
    return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)})


def writers() -> tuple[set[str], list[str]]:
    """(the functions found writing logs, as module.function; those not in store_transaction)."""
    modules = _modules()
    # Seeds: module-level statements whose SQL writes logs, per module; a function using one writes.
    watched: dict[str, set[str]] = {m: {t.id for s in tree.body if isinstance(s, ast.Assign)
                                        and any(_WRITES_LOGS.search(x) for x in _texts(s.value))
                                        for t in s.targets if isinstance(t, ast.Name)}
                                    for m, tree in modules.items()}
    delegating: set[str] = set()  # functions given the caller's connection: their callers are checked
    found, outside = set(), []
    while True:
        grew = False
        for module, tree in modules.items():
            for fn in _functions(tree):
                used = _names(fn) - {fn.name}
                inline = any(_WRITES_LOGS.search(x) for x in _texts(fn))
                if not (inline or used & watched[module] or used & delegating):
                    continue
                found.add(f"{module}.{fn.name}")
                if _OPENER in used:
                    continue
                if "conn" in {a.arg for a in fn.args.args + fn.args.kwonlyargs}:
                    grew |= fn.name not in delegating
                    delegating.add(fn.name)
                elif f"{module}.{fn.name}" not in outside:
                    outside.append(f"{module}.{fn.name}")
        if not grew:
            return found, outside


def test_every_log_writer_holds_the_tenants_erasure_lock():
    found, outside = writers()
    # Not vacuous: the ingest insert and the trace assembly (insert and replace) are found.
    assert {"collector_api.store.logs.writes.insert_rows", "collector_api.store.logs.writes._insert",
            "collector_api.store.traces.assembly.finish"} <= found, found
    assert not outside, f"these write workflow_logs outside {_OPENER} (store.logs.store_lock): {outside}"
