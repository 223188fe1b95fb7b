"""FROZEN copy of otel_bridge/pii.py at commit 6ea08b1 (before the linear-time detectors): the baseline of
bench/bench_pii.py. Do not edit: the benchmark compares the current detectors against it."""
# ruff: noqa

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping

logger = logging.getLogger(__name__)

REDACTION_FAILED = "<redaction failed>"
DEV_KEY = "flusso-development-key-not-secret"

# Known field names -> token type. Matched on the lower-cased key.
PII_FIELD_TYPES: dict[str, str] = {
    "requester_email": "email",
    "customer_email": "email",
    "email": "email",
    "requester_name": "name",
    "customer_name": "name",
    "full_name": "name",
    "requester_phone": "phone",
    "customer_phone": "phone",
    "phone": "phone",
    "subject": "text",
    "description": "text",
    "body": "text",
    "message": "text",
    "messages": "text",
    "customer_message": "text",
    "customer_messages": "text",
    "address": "text",
}

_SECRET_PATTERNS = [
    # PEM private keys (a block cut short by truncation is still caught to the end).
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    # JWTs
    r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
    # Bearer / Basic tokens
    r"\b(?i:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}",
    # Vendor keys: OpenAI/Anthropic-style sk-, AWS, GitHub, Slack, Google
    r"\bsk-[A-Za-z0-9_-]{12,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    r"\bAIza[0-9A-Za-z_-]{30,}",
]
# Every scanner first matches an existing token so that it is skipped, never re-tokenized.
_TOKEN = r"(?P<tok>\[[a-z_]{2,24}[:=][^\]\s]{1,80}\])"


def _scanner(pattern: str) -> re.Pattern:
    return re.compile(f"{_TOKEN}|(?:{pattern})")


_SECRET_RE = _scanner("|".join(f"(?:{p})" for p in _SECRET_PATTERNS))
# key=value / key: value / "key": "value" assignments of secrets: the value is tokenized.
_ASSIGN_RE = _scanner(
    r"\b(?P<key>(?i:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?token"
    r"|auth[_-]?token|refresh[_-]?token|token|client[_-]?secret|private[_-]?key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<value>[^\s,;&\"'\]\[]+)"
)
_EMAIL_RE = _scanner(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN_RE = _scanner(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD_RE = _scanner(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PHONE_RE = _scanner(
    r"(?<![\w+])(?:\+|00)?\(?\d{1,4}\)?(?:[ .\-/]?\(?\d{1,5}\)?){2,6}(?![\w])"
)
_DATE_LIKE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[./]\d{1,2}[./]\d{2,4}$|^\d{2}:\d{2}")


_DIGIT_RE = re.compile(r"\d")
# Cheap pre-check: the secret patterns cannot match a string with none of these.
_SECRET_HINT_RE = re.compile(r"-----BEGIN|eyJ|(?i:bearer|basic)\s|sk-|AKIA|ASIA|gh[pousr]_|xox|AIza")
_CACHE_MAX_LEN = 256
_CACHE_MAX_ENTRIES = 8192


def luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


class Redactor:
    """Turns personal values into keyed tokens and scrubs free text. Thread-safe (stateless
    after construction)."""

    def __init__(self, key: str | bytes, *, hex_chars: int = 12, max_string_chars: int = 4000):
        self._key = key.encode() if isinstance(key, str) else bytes(key)
        self.hex_chars = max(12, int(hex_chars))
        self.max_string_chars = max(64, int(max_string_chars))
        self._cache: dict[str, str] = {}

    # --- tokens ---
    def token(self, kind: str, value: object) -> str:
        """``[kind:hex]`` for ``value``; the same value always gives the same token."""
        norm = _normalize(kind, value)
        digest = hmac.new(self._key, f"{kind}\x00{norm}".encode("utf-8", "surrogatepass"), hashlib.sha256)
        return f"[{kind}:{digest.hexdigest()[: self.hex_chars]}]"

    def hash_field(self, kind: str, value: object) -> object:
        """Token for a known PII field; lists are tokenized item by item; None stays None."""
        try:
            if value is None or isinstance(value, bool):
                return value
            if isinstance(value, (list, tuple)):
                return [self.hash_field(kind, v) for v in value]
            if isinstance(value, Mapping):
                return {self.scrub_text(str(k)): self.hash_field(kind, v) for k, v in value.items()}
            if isinstance(value, (bytes, bytearray, memoryview)):
                return describe_bytes(value)
            return self.token(kind, value)
        except Exception:
            logger.exception("otel_bridge: hashing a %s field failed", kind)
            return REDACTION_FAILED

    # --- free text ---
    def scrub_text(self, text: str, known: "KnownValues | None" = None) -> str:
        """Replace secrets, emails, IBANs, Luhn-valid cards and phone numbers with tokens,
        then the ticket's known values (``known``: (raw value, kind) pairs, longest first),
        then truncate."""
        try:
            if not isinstance(text, str):
                text = str(text)
            if len(text) < 3:  # nothing to find in "", "ok", "a-"
                return text
            if known is not None:
                hit = known.cache.get(text)
                if hit is not None:
                    return hit
            source = text
            limit = self.max_string_chars
            original_len = len(text)
            if original_len > 4 * limit:  # bound the regex work; the tail is cut anyway
                text = text[: 4 * limit]
            text = self._scrub_patterns(text)
            if known is not None and known.pairs:
                text = self._replace_known(text, known)
            if len(text) > limit or original_len > 4 * limit:
                text = f"{text[:limit]}…[truncated {max(0, original_len - limit)} chars]"
            if known is not None and len(source) <= _CACHE_MAX_LEN:
                known.cache[source] = text
            return text
        except Exception:
            logger.exception("otel_bridge: scrubbing a string of %d chars failed",
                             len(text) if isinstance(text, str) else -1)
            return REDACTION_FAILED

    def _scrub_patterns(self, text: str) -> str:
        # Node names, attribute keys and other short strings recur in every ticket: memoize.
        cached = self._cache.get(text) if len(text) <= _CACHE_MAX_LEN else None
        if cached is not None:
            return cached
        out = text
        if len(out) >= 6:
            if _SECRET_HINT_RE.search(out):
                out = _SECRET_RE.sub(self._secret, out)
            if "=" in out or ":" in out:
                out = _ASSIGN_RE.sub(self._assignment, out)
            if "@" in out:
                out = _EMAIL_RE.sub(self._email, out)
            if _DIGIT_RE.search(out):
                out = _IBAN_RE.sub(self._iban, out)
                out = _CARD_RE.sub(self._card, out)
                out = _PHONE_RE.sub(self._phone, out)
        if len(text) <= _CACHE_MAX_LEN:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[text] = out
        return out

    def _replace_known(self, text: str, known: "KnownValues") -> str:
        if not known.lows:
            return text
        lowered = text.lower()
        for low in known.lows:
            if low in lowered:
                break
        else:
            return text
        return known.rx.sub(
            lambda m: m.group(0) if m.group("tok") else self.token(known.kinds.get(m.group(0).lower(), "text"), m.group(0)),
            text)

    def _secret(self, m: re.Match) -> str:
        return m.group(0) if m.group("tok") else self.token("secret", m.group(0))

    def _email(self, m: re.Match) -> str:
        return m.group(0) if m.group("tok") else self.token("email", m.group(0))

    def _assignment(self, m: re.Match) -> str:
        if m.group("tok"):
            return m.group(0)
        return m.group("key") + self.token("secret", m.group("value"))

    def _iban(self, m: re.Match) -> str:
        s = m.group(0)
        if m.group("tok"):
            return s
        return self.token("iban", s) if iban_ok(s) else s

    def _card(self, m: re.Match) -> str:
        s = m.group(0)
        if m.group("tok"):
            return s
        digits = re.sub(r"\D", "", s)
        return self.token("card", digits) if 13 <= len(digits) <= 19 and luhn_ok(digits) else s

    def _phone(self, m: re.Match) -> str:
        s = m.group(0)
        if m.group("tok"):
            return s
        digits = re.sub(r"\D", "", s)
        if not 8 <= len(digits) <= 15 or _DATE_LIKE_RE.match(s.strip()):
            return s
        # Plain integers without any separator or '+' (ids, counts) are not treated as phones
        # unless long enough to be a subscriber number.
        if s.isdigit() and len(s) < 10:
            return s
        return self.token("phone", digits)

    # --- whole structures ---
    def scrub_value(self, value: object, known: "KnownValues | None" = None, depth: int = 0) -> object:
        """Scrub a JSON-like structure: strings scanned, dict keys too, known PII field names
        hashed, bytes -> digest + size. Numbers, booleans and None pass through."""
        try:
            if value is None or isinstance(value, (bool, int, float)):
                return value
            if isinstance(value, str):
                return self.scrub_text(value, known)
            if isinstance(value, (bytes, bytearray, memoryview)):
                return describe_bytes(value)
            if depth > 32:
                return "<too deep>"
            if isinstance(value, Mapping):
                out = {}
                for k, v in value.items():
                    key = self.scrub_text(str(k), known)
                    kind = PII_FIELD_TYPES.get(str(k).lower())
                    out[key] = self.hash_field(kind, v) if kind else self.scrub_value(v, known, depth + 1)
                return out
            if isinstance(value, (list, tuple, set, frozenset)):
                return [self.scrub_value(v, known, depth + 1) for v in value]
            return self.scrub_text(repr(value), known)
        except Exception:
            logger.exception("otel_bridge: scrubbing a %s failed", type(value).__name__)
            return REDACTION_FAILED


def _normalize(kind: str, value: object) -> str:
    s = str(value).strip()
    if kind == "email":
        return s.lower()
    if kind in ("phone", "card"):
        return re.sub(r"\D", "", s)
    if kind in ("iban",):
        return s.replace(" ", "").upper()
    if kind == "name":
        return " ".join(s.lower().split())
    return s


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def describe_bytes(value: bytes | bytearray | memoryview) -> str:
    data = bytes(value)
    return f"[bytes:sha256={hashlib.sha256(data).hexdigest()[:16]} size={len(data)}]"


class KnownValues:
    """A ticket's raw PII values, prepared once per ticket for fast replacement in free text."""

    __slots__ = ("pairs", "lows", "kinds", "rx", "cache")

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        self.cache: dict[str, str] = {}  # scrubbed strings of this ticket (they repeat)
        self.lows = tuple(raw.lower() for raw, _ in pairs)
        self.kinds = {raw.lower(): kind for raw, kind in pairs}
        alts = "|".join(
            rf"\b{re.escape(raw)}\b" if raw[:1].isalnum() and raw[-1:].isalnum() else re.escape(raw)
            for raw, _ in pairs
        )
        self.rx = re.compile(f"{_TOKEN}|(?i:{alts})") if pairs else None

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __iter__(self):
        return iter(self.pairs)


def known_values(fields: Mapping[str, object], marked: Iterable[str] = (),
                 extra: Iterable[tuple[str, str]] = ()) -> KnownValues:
    """Raw values of a ticket's PII fields (plus ``extra`` (value, kind) pairs from
    record.pii), to replace wherever they recur in free text (a requester's name in a
    draft). Longest first; the parts of a name are included."""
    pairs: dict[str, str] = {}
    for v, kind in extra:
        if isinstance(v, str) and len(v.strip()) >= 3:
            pairs[v.strip()] = kind
            if kind == "name":
                for part in v.split():
                    if len(part) >= 3:
                        pairs.setdefault(part, "name")
    marked_set = {m.lower() for m in marked}
    for key, value in fields.items():
        lk = str(key).lower()
        kind = PII_FIELD_TYPES.get(lk) or ("text" if lk in marked_set else None)
        if kind is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if not isinstance(v, str) or len(v.strip()) < 3:
                continue
            pairs[v.strip()] = kind
            if kind == "name":
                for part in v.split():
                    if len(part) >= 3:
                        pairs.setdefault(part, "name")
    return KnownValues(sorted(pairs.items(), key=lambda kv: -len(kv[0])))
