"""The usage report as CSV, for billing: what `flusso-obs usage --csv` prints and the viewer's
/usage.csv and /api/v1/usage.csv serve. Pure: it renders a report the store read
(collector_api.store.logs.usage.UsageReport, or anything of its shape), with the recontact rate
the store read (collector_api.store.logs.recontact.Recontact) on each tenant's totals line.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

CSV_COLUMNS = ("client_id", "period_start", "period_end", "model", "tickets", "success", "partial", "failed",
               "llm_calls", "input_tokens", "output_tokens", "cost_usd",
               # the recontact rate (docs/viewer.md): resolved tickets with a session, those whose
               # customer came back within recontact_days, their ratio (empty when none resolved)
               "resolved_in_sessions", "recontacted", "recontact_rate", "recontact_days")


class ClientFigures(Protocol):
    @property
    def client_id(self) -> str: ...
    def as_dict(self) -> dict[str, Any]: ...


class Recontacts(Protocol):
    @property
    def window_days(self) -> int: ...
    @property
    def per_client(self) -> Mapping[str, Mapping[str, Any]]: ...  # client -> resolved, recontacted, rate


class Report(Protocol):
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def clients(self) -> Sequence[ClientFigures]: ...


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (ids and model names are tenant-chosen)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _recontact_cells(recontact: Recontacts, client_id: str) -> list[Any]:
    r = recontact.per_client.get(client_id) or {"resolved": 0, "recontacted": 0, "rate": None}
    rate = "" if r["rate"] is None else f"{r['rate']:.6f}"
    return [r["resolved"], r["recontacted"], rate, recontact.window_days]


def usage_csv(report: Report, recontact: Recontacts) -> str:
    """Per client one line of totals (model `*`, with its recontact figures), then one line per
    model (recontact cells empty)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    period = (report.start.isoformat(), report.end.isoformat())
    for c in report.clients:
        d = c.as_dict()
        writer.writerow([_cell(c.client_id), *period, "*", d["tickets"], d["success"], d["partial"], d["failed"],
                         d["llm_calls"], d["input_tokens"], d["output_tokens"], f"{d['cost_usd']:.8f}",
                         *_recontact_cells(recontact, c.client_id)])
        for m in d["models"]:
            writer.writerow([_cell(c.client_id), *period, _cell(m["model"]), "", "", "", "", m["calls"],
                             m["input_tokens"], m["output_tokens"], f"{m['cost_usd']:.8f}", "", "", "", ""])
    return out.getvalue()
