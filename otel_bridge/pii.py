"""Keyed hashing and redaction of personal data and secrets.

A value becomes a typed token ``[email:3f9d8e2b1c5a]``: the first hex chars of
HMAC-SHA256(key, normalized value). One value always gives the same token (searchable);
without the key a dictionary of candidate values cannot reverse it.

Every public function here is fail-safe: a value whose redaction raises becomes
``"<redaction failed>"``; the raw value is never returned on error.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote

from otel_bridge.known import TOKEN_BODY as _TOKEN_BODY
from otel_bridge.known import TOKEN_SPLIT_RE as _TOKEN_SPLIT_RE
from otel_bridge.known import KnownValues as KnownValues
from otel_bridge.known import known_values as known_values

# The key rules live in pii_keys; these names stay importable from here.
from otel_bridge.pii_keys import PII_FIELD_TYPES as PII_FIELD_TYPES
from otel_bridge.pii_keys import field_kind as field_kind
from otel_bridge.pii_keys import key_words as key_words
from otel_bridge.pii_keys import ticket_field_kind as ticket_field_kind

logger = logging.getLogger(__name__)

REDACTION_FAILED = "<redaction failed>"
DEV_KEY = "flusso-development-key-not-secret"


# Every free-text detector runs in time linear in the text (customers paste digit runs, long
# local parts, base64 blobs; a backtracking pattern would hold the GIL for seconds). The rules:
# runs are consumed possessively (``++``, ``{m,n}+``) so a failed match is never re-split; a
# match that scans a run starts only at the run's first character (a negative lookbehind on the
# run's class), so no run is scanned once per position; everything else is bounded. Timings
# and the adversarial inputs: docs/benchmarks.md, "PII detectors".
# ``X(?<!\w.)`` is ``\bX`` for a word character X, written so that every alternative of the
# secret scanner starts with a literal: the regex engine then skips ahead to those characters
# instead of trying eight patterns at every position.
_NOT_AFTER_WORD = r"(?<!\w.)"
_BEARER_TAIL = _NOT_AFTER_WORD + r"(?i:earer|asic)\s++[A-Za-z0-9._~+/=-]{8,}+"
_SECRET_PATTERNS = [
    # PEM private keys (a block cut short by truncation is still caught to the end).
    r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]{0,40}PRIVATE KEY-----|\Z)",
    # Bearer / Basic tokens
    "b" + _BEARER_TAIL,
    "B" + _BEARER_TAIL,
    # Vendor keys: OpenAI/Anthropic-style sk-, AWS, Google, GitHub, Slack
    "s" + _NOT_AFTER_WORD + r"k-[A-Za-z0-9_-]{12,}+",
    "A" + _NOT_AFTER_WORD + r"(?:(?:KIA|SIA)[0-9A-Z]{16}\b|Iza[0-9A-Za-z_-]{30,}+)",
    "g" + _NOT_AFTER_WORD + r"h[pousr]_[A-Za-z0-9]{20,}+",
    "x" + _NOT_AFTER_WORD + r"ox[abprs]-[A-Za-z0-9-]{10,}+",
]
# Every scanner first matches an existing token so that it is skipped, never re-tokenized.
_TOKEN = rf"(?P<tok>\[{_TOKEN_BODY}\])"


def _scanner(pattern: str) -> re.Pattern:
    return re.compile(f"{_TOKEN}|(?:{pattern})")


_SECRET_RE = re.compile("|".join([rf"\[(?P<tok>{_TOKEN_BODY})\]", *_SECRET_PATTERNS]))
# JWTs: an ``eyJ`` anywhere in a run of base64url characters (also glued on: ``Bearer%20eyJ..``).
# The atomic group settles on the run's first ``eyJ``: any later one ends at the same place.
_JWT_RE = _scanner(
    r"(?<![A-Za-z0-9_-])(?>[A-Za-z0-9_-]*?eyJ)[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+"
)
# key=value / key: value / "key": "value" assignments of secrets: the value is tokenized.
_ASSIGN_RE = _scanner(
    r"\b(?P<key>(?i:password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?token"
    r"|auth[_-]?token|refresh[_-]?token|token|client[_-]?secret|private[_-]?key)[\"']?+\s*+[:=]\s*+[\"']?+)"
    r"(?P<value>[^\s,;&\"'\]\[]++)"
)
# An '@', or one percent-encoded once or more (``ann%40example.com`` in a query string,
# ``%2540`` when encoded twice).
_AT = r"(?:@|%(?:25){0,3}40)"
# The local part starts where its run starts (or right after an encoded '@'), and a '%' in it
# is not the start of an encoded '@'. The domain's last label is the last one that starts with
# two letters (``ann@example.com.`` ends before the dot): labels are possessive, so giving them
# back one by one is linear.
# The scanners below run on the text between existing tokens (_sub_outside_tokens: no token
# alternative, and no pattern here can match '[' or ']'), and start with a character class
# where they can: the regex engine then skips to candidate characters.
_EMAIL_RE = re.compile(
    r"(?:(?<![A-Za-z0-9._%+-])|(?<=%40)|(?<=%2540))"
    rf"(?:[A-Za-z0-9._+-]|%(?!(?:25){{0,3}}40))++{_AT}"
    r"[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)*\.[A-Za-z]{2,}+"
)
_ENCODED_AT_RE = re.compile(r"%(?:25){0,3}40")
_PERCENT_RE = re.compile(r"%(?:25){0,3}([0-9A-Fa-f]{2})")
_LOCAL_PART_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_IBAN_RE = re.compile(r"[A-Z](?<!\w.)[A-Z]\d{2}(?: ?+[A-Z0-9]{4}){2,7}(?: ?+[A-Z0-9]{1,4}+)?\b")
_CARD_RE = re.compile(r"\d(?<![\d-]\d)(?:[ -]?+\d){12,18}(?![\d-])")
# Digit groups are possessive: the greedy split uses the fewest groups, so when it fails every
# other split fails too (the old pattern tried them all: seconds on a field of 40-digit runs).
# One group after the first is enough here; _phone() requires 8-15 digits.
# A digit run glued to a word by a hyphen is part of that word, not a phone number: dated
# model ids (``claude-sonnet-4-20250514``, ``gpt-4o-2024-08-06``, ``mistral-large-2411``).
_PHONE_RE = re.compile(
    r"(?<![\w+])(?<!\w-)(?:\+|00)?\(?\d{1,4}+\)?(?:[ .\-/]?\(?\d{1,5}+\)?){1,6}(?![\w])"
)
_DATE_LIKE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[./]\d{1,2}[./]\d{2,4}$|^\d{2}:\d{2}")


_DIGIT_RE = re.compile(r"\d")
# Every key _ASSIGN_RE knows contains one of these.
_SECRET_KEY_HINTS = ("pass", "pwd", "secret", "key", "token")
# Phone and card matches hold digits and these separators only: translate() keeps the digits.
_DROP_SEPARATORS = str.maketrans("", "", " .-/()+")
_LUHN_DOUBLED = str.maketrans("0123456789", "0246813579")
# Cheap pre-check: the secret patterns cannot match a string with none of these.
_SECRET_HINT_RE = re.compile(r"-----BEGIN|eyJ|(?i:bearer|basic)\s|sk-|AKIA|ASIA|gh[pousr]_|xox|AIza")
# The same pre-check as substrings of the lowered text (a superset: a hit only means the full
# scan runs): ~3x faster than the regex's case-insensitive alternatives on 500 chars of prose.
# The GitHub prefixes are looked for only after "gh" is found (one scan instead of five).
_SECRET_HINTS_LOWER = ("-----begin", "eyj", "bearer", "basic", "sk-", "akia", "asia", "xox", "aiza")
_GITHUB_HINTS_LOWER = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")
_ASCII_DIGITS = "0123456789"
_CACHE_MAX_LEN = 256
_CACHE_MAX_ENTRIES = 8192


def _sub_outside_tokens(rx: re.Pattern[str], repl: Callable[[re.Match[str]], str], text: str) -> str:
    """``rx.sub(repl, text)`` on the text between existing tokens, which stay as they are."""
    if "[" not in text:
        return rx.sub(repl, text)
    parts = _TOKEN_SPLIT_RE.split(text)  # tokens at the odd indexes
    parts[::2] = [rx.sub(repl, p) if p else p for p in parts[::2]]
    return "".join(parts)


def _has_secret_key(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _SECRET_KEY_HINTS)


def _secret_hint(lowered: str) -> bool:
    """Whether the lowered text holds a hint of _SECRET_HINT_RE (a superset: then it runs)."""
    for hint in _SECRET_HINTS_LOWER:
        if hint in lowered:
            return True
    return "gh" in lowered and any(hint in lowered for hint in _GITHUB_HINTS_LOWER)


def _has_digit(text: str) -> bool:
    """_DIGIT_RE.search (any Unicode decimal digit); an ASCII text can only hold ASCII digits,
    found by one memchr each: ~5x faster than the regex over prose that holds none."""
    if text.isascii():
        return any(map(text.__contains__, _ASCII_DIGITS))
    return _DIGIT_RE.search(text) is not None


def luhn_ok(digits: str) -> bool:
    # Every second digit from the right doubled (digit sum of 2d), via one translate().
    doubled = digits[-2::-2].translate(_LUHN_DOUBLED)
    return sum(map(int, digits[-1::-2] + doubled)) % 10 == 0


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
        self._mac = hmac.new(self._key, digestmod=hashlib.sha256)  # copied per token: no re-keying
        self.hex_chars = max(12, int(hex_chars))
        self.max_string_chars = max(64, int(max_string_chars))
        self._cache: dict[str, str] = {}
        self._tokens: dict[str, str] = {}

    # --- tokens ---
    def token(self, kind: str, value: object) -> str:
        """``[kind:hex]`` for ``value``; the same value always gives the same token."""
        norm = _normalize(kind, value)
        # A ticket repeats its values (one email in every span): memoize, bounded like _cache.
        memo_key = f"{kind}\x00{norm}"
        hit = self._tokens.get(memo_key)
        if hit is not None:
            return hit
        digest = self._mac.copy()
        digest.update(memo_key.encode("utf-8", "surrogatepass"))
        tok = f"[{kind}:{digest.hexdigest()[: self.hex_chars]}]"
        if len(self._tokens) >= _CACHE_MAX_ENTRIES:
            self._tokens.clear()
        self._tokens[memo_key] = tok
        return tok

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
    def scrub_text(self, text: str, known: KnownValues | None = None) -> str:
        """Replace secrets, emails, IBANs, Luhn-valid cards and phone numbers with tokens,
        then the trace's known values (``known``: otel_bridge.known, one pass over the text),
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
            if known:
                text = known.replace(text, self.token)
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
            lowered = out.lower()
            if _secret_hint(lowered) and _SECRET_HINT_RE.search(out):
                out = _SECRET_RE.sub(self._secret, out)
                if "eyJ" in out:
                    out = _JWT_RE.sub(self._secret, out)
                lowered = out.lower()
            if ("=" in out or ":" in out) and any(hint in lowered for hint in _SECRET_KEY_HINTS):
                out = _ASSIGN_RE.sub(self._assignment, out)
            if "@" in out or ("%" in out and _ENCODED_AT_RE.search(out)):
                out = _sub_outside_tokens(_EMAIL_RE, self._email, out)
            if _has_digit(out):
                out = _sub_outside_tokens(_IBAN_RE, self._iban, out)
                out = _sub_outside_tokens(_CARD_RE, self._card, out)
                out = _sub_outside_tokens(_PHONE_RE, self._phone, out)
        if len(text) <= _CACHE_MAX_LEN:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[text] = out
        return out

    def scrub_identifier(self, text: object, known: KnownValues | None = None) -> object:
        """An identifier (a model, node, tool or span name, an id, a version, an attribute
        key): never the free-text detectors, which mistake ``claude-sonnet-4-20250514`` for a
        phone number. Only what an identifier never legitimately is: an email address, a
        secret, a Luhn-valid card number, and the trace's whole known values (not the parts of
        a name: a customer called Claude must not rename the model). Non-strings pass."""
        if not isinstance(text, str) or len(text) < 3:
            return text
        try:
            if not known:
                return self._identifier_patterns(text)
            memo = "\x01" + text  # keys and names recur in every span of a trace
            hit = known.cache.get(memo)
            if hit is not None:
                return hit
            out = known.replace(self._identifier_patterns(text), self.token, parts=False)
            if len(text) <= _CACHE_MAX_LEN:
                known.cache[memo] = out
            return out
        except Exception:
            logger.exception("otel_bridge: scrubbing an identifier of %d chars failed", len(text))
            return REDACTION_FAILED

    def _identifier_patterns(self, text: str) -> str:
        key = "\x00" + text  # one memo with _scrub_patterns' (short strings recur in every ticket)
        cached = self._cache.get(key) if len(text) <= _CACHE_MAX_LEN else None
        if cached is not None:
            return cached
        out = text
        if len(out) >= 6 and _secret_hint(out.lower()) and _SECRET_HINT_RE.search(out):
            out = _SECRET_RE.sub(self._secret, out)
            if "eyJ" in out:
                out = _JWT_RE.sub(self._secret, out)
        if "@" in out or ("%" in out and _ENCODED_AT_RE.search(out)):
            out = _sub_outside_tokens(_EMAIL_RE, self._email, out)
        if len(out) >= 13 and _has_digit(out):
            out = _sub_outside_tokens(_CARD_RE, self._card, out)
        if len(text) > 4 * self.max_string_chars:
            out = truncate(out, self.max_string_chars)
        if len(text) <= _CACHE_MAX_LEN:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = out
        return out

    def _secret(self, m: re.Match) -> str:
        return m.group(0) if m.group("tok") else self.token("secret", m.group(0))

    def _email(self, m: re.Match) -> str:
        s = m.group(0)
        if "%" not in s:
            return self.token("email", s)
        # Percent-encoded (from a URL): the address starts after the last encoded character
        # that cannot be in one (``%3Demail%3Dann%40x.com``: after the '='), and is hashed
        # decoded, so it gives the same token as when written plainly.
        at = _ENCODED_AT_RE.search(s)
        end = min(s.find("@") % (len(s) + 1), at.start() if at else len(s))
        start = 0
        for pct in _PERCENT_RE.finditer(s, 0, end):
            if chr(int(pct.group(1), 16)) not in _LOCAL_PART_CHARS:
                start = pct.end()
        return s[:start] + self.token("email", _percent_decode(s[start:]))

    def _assignment(self, m: re.Match) -> str:
        if m.group("tok"):
            return m.group(0)
        return m.group("key") + self.token("secret", m.group("value"))

    def _iban(self, m: re.Match) -> str:
        s = m.group(0)
        return self.token("iban", s) if iban_ok(s) else s

    def _card(self, m: re.Match) -> str:
        s = m.group(0)
        digits = s.translate(_DROP_SEPARATORS)
        return self.token("card", digits) if 13 <= len(digits) <= 19 and luhn_ok(digits) else s

    def _phone(self, m: re.Match) -> str:
        s = m.group(0)
        digits = s.translate(_DROP_SEPARATORS)
        if not 8 <= len(digits) <= 15 or _DATE_LIKE_RE.match(s.strip()):
            return s
        # Plain integers without any separator or '+' (ids, counts) are not treated as phones
        # unless long enough to be a subscriber number.
        if s.isdigit() and len(s) < 10:
            return s
        return self.token("phone", digits)

    def replace_known(self, value: object, known: KnownValues, depth: int = 0) -> object:
        """Only ``known``'s values replaced, in every string and key of a JSON-like structure,
        without the pattern detectors: for text those already scrubbed (a trace's spans get a
        second pass once all its person values are known). Tokens are kept as they are."""
        try:
            if isinstance(value, str):
                return known.replace(value, self.token) if len(value) >= 3 else value
            if value is None or isinstance(value, (bool, int, float)) or not known:
                return value
            if depth > 32:
                return "<too deep>"
            if isinstance(value, Mapping):
                return {self.replace_known(str(k), known, depth + 1): self.replace_known(v, known, depth + 1)
                        for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [self.replace_known(v, known, depth + 1) for v in value]
            return self.scrub_value(value, known, depth)
        except Exception:
            logger.exception("otel_bridge: replacing known values in a %s failed", type(value).__name__)
            return REDACTION_FAILED

    # --- whole structures ---
    def scrub_value(self, value: object, known: KnownValues | None = None, depth: int = 0) -> object:
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
                    kind = field_kind(str(k))
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
        return s if s.isdigit() else re.sub(r"\D", "", s)
    if kind in ("iban",):
        return s.replace(" ", "").upper()
    if kind == "name":
        return " ".join(s.lower().split())
    return s


def _percent_decode(text: str) -> str:
    for _ in range(4):  # ``%2540`` -> ``%40`` -> ``@``
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def describe_bytes(value: bytes | bytearray | memoryview) -> str:
    data = bytes(value)
    return f"[bytes:sha256={hashlib.sha256(data).hexdigest()[:16]} size={len(data)}]"
