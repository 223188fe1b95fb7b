"""Forbidden-phrase / policy patterns, matched without regular expressions.

A pattern is a plain phrase (at most MAX_PATTERN_CHARS, at most MAX_PATTERNS of them), compared
case-insensitively with whitespace runs collapsed; `*` inside a phrase stands for any run of at
most WILDCARD_SPAN characters within the same sentence. Matching is `str.find` over bounded
pieces, so no pattern can make it slow (no backtracking: a regex written by a user could)."""
from __future__ import annotations

import re

MAX_PATTERNS = 50
MAX_PATTERN_CHARS = 200
WILDCARD_SPAN = 40
_SPACES = re.compile(r"\s+")


class PolicyError(ValueError):
    """A pattern list that is too long, or a pattern that is empty or too long."""


def normal(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def check_patterns(patterns: object) -> list[str]:
    """The patterns, normalised; raises PolicyError naming what is wrong."""
    if not isinstance(patterns, list) or not patterns:
        raise PolicyError("expected at least one phrase")
    if len(patterns) > MAX_PATTERNS:
        raise PolicyError(f"at most {MAX_PATTERNS} phrases, got {len(patterns)}")
    out = []
    for p in patterns:
        if not isinstance(p, str) or not normal(p).replace("*", "").strip():
            raise PolicyError("every phrase needs at least one character besides '*'")
        if len(p) > MAX_PATTERN_CHARS:
            raise PolicyError(f"a phrase has at most {MAX_PATTERN_CHARS} characters, got {len(p)}")
        out.append(normal(p))
    return out


def phrase_found(text: str, pattern: str) -> bool:
    """Whether normalised `pattern` occurs in normalised `text` (see the module's docstring)."""
    pieces = [p.strip() for p in pattern.split("*") if p.strip()]
    start = 0
    while True:
        at = text.find(pieces[0], start)
        if at < 0:
            return False
        if _rest_follows(text, at + len(pieces[0]), pieces[1:]):
            return True
        start = at + 1


def _rest_follows(text: str, pos: int, pieces: list[str]) -> bool:
    for piece in pieces:  # greedy-free: the nearest next piece within the span
        window = text[pos:pos + WILDCARD_SPAN + len(piece) + 2]
        at = window.find(piece)
        if at < 0 or any(c in window[:at] for c in ".!?\n"):
            return False
        pos += at + len(piece)
    return True


def forbidden_found(text: str, patterns: list[str]) -> list[str]:
    """The patterns found in `text`."""
    haystack = normal(text)
    return [p for p in patterns if phrase_found(haystack, p)]
