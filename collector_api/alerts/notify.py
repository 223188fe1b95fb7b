"""What an alert says: the webhook body (JSON, or Slack's {"text": ...}) and the viewer link it
carries. Pure (no I/O); the evaluation (collector_api.alerts.evaluate) queues the body with
the state change, and the delivery job sends it as is.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import urlencode

from collector_api.alerts.rules import AlertRule, format_window


def tickets_link(public_url: str | None, rule: AlertRule, client_id: str, now: datetime) -> str:
    """The viewer's ticket list for this tenant and window (status filtered for the rate metrics)."""
    params = {"client": client_id, "start": (now - timedelta(seconds=rule.window_s)).isoformat(timespec="seconds"),
              "end": now.isoformat(timespec="seconds")}
    status = {"failure_rate": "FAILED", "partial_rate": "PARTIAL"}.get(rule.metric)
    if status:
        params["status"] = status
    if rule.metric == "recontact_rate":  # the customers who came back
        params["recontacted"] = "yes"
        return f"{(public_url or '').rstrip('/')}/sessions?{urlencode(params)}"
    return f"{(public_url or '').rstrip('/')}/tickets?{urlencode(params)}"


def notification_body(rule: AlertRule, client_id: str, state: str, value: float | None, link: str,
                      now: datetime) -> bytes:
    """The webhook's JSON (or, for a Slack rule, a Slack-compatible {"text": ...})."""
    shown = "n/a" if value is None else f"{value:.4g}"
    if rule.slack:
        icon = ":rotating_light:" if state == "firing" else ":white_check_mark:"
        text = (f"{icon} [{state.upper()}] {rule.name}: {rule.metric} {shown} {rule.op} {rule.threshold:g}"
                f" over {format_window(rule.window_s)} for tenant {client_id} - <{link}|tickets>")
        return json.dumps({"text": text}).encode()
    return json.dumps({
        "rule": {"id": rule.id, "name": rule.name}, "tenant": client_id, "metric": rule.metric, "value": value,
        "op": rule.op, "threshold": rule.threshold, "window": format_window(rule.window_s), "state": state,
        "at": now.isoformat(), "link": link}).encode()
