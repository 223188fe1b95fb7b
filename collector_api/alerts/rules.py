"""Alert rules as people write them: the fields, their validation, the window format, and the
signing secret. Pure (no I/O).

The viewer's alerts page and `flusso-obs alerts create` validate with `validate_rule` (an
AlertRuleError names the first bad field); collector_api.alerts.admin then stores the rule. A
rule's signing secret is never stored: it is derived, `HMAC-SHA256(FLUSSO_ALERT_SECRET_KEY,
salt)`, from a random per-rule salt (stored, unreadable by the RLS role) and the server's key
(not in the database). It is shown once, at creation; the delivery job derives it again to sign.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from collector_api.contract.numbers import finite_number

METRICS = ("failure_rate", "partial_rate", "avg_hallucination_risk", "p95_execution_s", "cost_usd", "tickets",
           "rejections", "recontact_rate")
RATE_METRICS = ("failure_rate", "partial_rate", "avg_hallucination_risk", "recontact_rate")  # values in [0, 1]
# `eval:<evaluator name>`: the average score (0 to 1) of that evaluator over the window.
EVAL_PREFIX = "eval:"
_EVAL_METRIC = re.compile(r"^eval:[a-z0-9][a-z0-9_.-]{0,63}$")
OPS = (">", ">=", "<", "<=")
MIN_WINDOW_S, MAX_WINDOW_S = 300, 7 * 86400
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_WINDOW = re.compile(r"^([1-9][0-9]{0,5})([mhd])$")
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SECRET_PREFIX = "whsec_"
SALT_BYTES = 32


class AlertRuleError(ValueError):
    """Invalid rule input; `field` names the offending field, the message says what was expected."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class RuleSpec:
    """A validated rule, not stored yet (see `validate_rule`)."""

    name: str
    metric: str
    op: str
    threshold: float
    window_s: int
    client_id: str | None
    webhook_url: str
    slack: bool = False
    min_tickets: int = 0


@dataclass(frozen=True)
class AlertRule(RuleSpec):
    id: int = 0
    created_at: datetime | None = None

    @property
    def window(self) -> str:
        return format_window(self.window_s)


@dataclass(frozen=True)
class NewAlertRule:
    rule: AlertRule
    secret: str  # shown once, never stored


def rule_from_row(row: dict[str, Any]) -> AlertRule:
    """A stored rule (a row of collector_api.store.alerts.rules) as an AlertRule."""
    return AlertRule(**{k: row[k] for k in ("id", "name", "metric", "op", "threshold", "window_s", "client_id",
                                           "webhook_url", "slack", "min_tickets", "created_at")})


def parse_window(text: str) -> int:
    """'15m', '6h', '7d' -> seconds, between 5m and 7d."""
    match = _WINDOW.match(text.strip().lower())
    if not match:
        raise AlertRuleError("window", f"expected a number and m, h or d (e.g. 15m, 6h, 7d), got {text[:40]!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise AlertRuleError("window", f"must be between 5m and 7d, got {text[:40]!r}")
    return seconds


def format_window(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"


def _check_url(url: str) -> str:
    url = url.strip()
    if len(url) > 2000:
        raise AlertRuleError("webhook", "at most 2000 characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise AlertRuleError("webhook", f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AlertRuleError("webhook", f"expected an http:// or https:// URL with a host, got {url[:80]!r}")
    if parts.username or parts.password:
        raise AlertRuleError("webhook", "credentials in the URL are not accepted")
    return url


def _check_threshold(metric: str, op: str, value: object) -> float:
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise AlertRuleError("threshold", f"expected a number, got {str(value)[:40]!r}") from None
    if finite_number(threshold) is None or threshold < 0:
        raise AlertRuleError("threshold", "expected a finite number >= 0")
    if (metric in RATE_METRICS or is_eval_metric(metric)) and threshold > 1:
        raise AlertRuleError("threshold", f"{metric} is a fraction: expected 0 to 1, got {threshold:g}")
    if metric == "tickets" and op not in ("<", "<="):
        raise AlertRuleError("op", "tickets is a floor (fires when fewer arrive): use '<' or '<='")
    return threshold


def is_eval_metric(metric: str) -> bool:
    """Whether `metric` is an evaluator's average score, `eval:<name>`."""
    return bool(_EVAL_METRIC.match(metric))


def validate_rule(*, name: str, metric: str, op: str, threshold: object, window: str, client_id: str | None,
                  webhook_url: str, slack: bool = False, min_tickets: object = 0) -> RuleSpec:
    """Check every field; raises AlertRuleError naming the first bad one."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 100 or any(ord(c) < 32 for c in name):
        raise AlertRuleError("name", "expected 1 to 100 printable characters")
    metric = (metric or "").strip()
    if metric not in METRICS and not is_eval_metric(metric):
        raise AlertRuleError("metric", f"expected one of {', '.join(METRICS)} or eval:<evaluator name>,"
                                       f" got {str(metric)[:40]!r}")
    if op not in OPS:
        raise AlertRuleError("op", f"expected one of {' '.join(OPS)}, got {str(op)[:10]!r}")
    value = _check_threshold(metric, op, threshold)
    window_s = parse_window(window or "")
    client_id = (client_id or "").strip() or None
    if client_id is not None and not _CLIENT.match(client_id):
        raise AlertRuleError("client", "expected a client id (letters, digits, '_', '.', '-')")
    try:
        floor = int(str(min_tickets).strip() or "0")
    except ValueError:
        raise AlertRuleError("min_tickets", f"expected a whole number >= 0, got {str(min_tickets)[:40]!r}") from None
    if not 0 <= floor <= 1_000_000_000:
        raise AlertRuleError("min_tickets", "expected a whole number >= 0")
    return RuleSpec(name=name, metric=metric, op=op, threshold=value, window_s=window_s, client_id=client_id,
                    webhook_url=_check_url(webhook_url or ""), slack=bool(slack), min_tickets=floor)


def new_salt() -> bytes:
    """A new rule's random salt (stored with it; the secret derives from it)."""
    return secrets.token_bytes(SALT_BYTES)


def signing_secret(master_key: str, salt: bytes) -> str:
    """A rule's webhook secret from the server key and its salt (deterministic; never stored)."""
    digest = hmac.new(master_key.encode("utf-8"), b"flusso.alert-rule\x00" + salt, hashlib.sha256).hexdigest()
    return SECRET_PREFIX + digest
