"""A human review's input, before the store writes it: validation and scrubbing. Pure (no I/O).

The viewer's review form and JSON API validate with `validate_review` (a ReviewError names the
first bad field), then scrub the note and corrected draft with `Scrubber.scrub_review` (the
bridge's free-text detectors, `otel_bridge.pii.Redactor.scrub_text`, as logs get in the
client), then store the result (collector_api.store.reviews.writes).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from otel_bridge.pii import Redactor

VERDICTS = ("correct", "needs_work", "incorrect")
BASE_FLAGS = ("hallucination", "policy", "tone", "wrong_tool")
MAX_NOTE_CHARS = 10_000
MAX_DRAFT_CHARS = 20_000
MAX_FLAGS = 20
PROVIDER_REVIEWER = "provider reviewer"  # what a tenant sees as the author of a provider's review


def shown_author(review: dict[str, Any], viewer_is_provider: bool) -> str:
    """The author of a stored review as `viewer` may see it: a provider sees who wrote it; a
    tenant sees its own users and keys, and a provider's review only as by its role (a
    provider's email is the provider's, not the tenant's, to share)."""
    if viewer_is_provider or review.get("author_role") in ("client", "api_key"):
        return review["author"]
    return PROVIDER_REVIEWER


class ReviewError(ValueError):
    """A review input refused: `field` names the input at fault; `status` is the HTTP status (400)."""

    def __init__(self, field: str, message: str, *, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


@dataclass(frozen=True)
class ReviewInput:
    """A validated review (scrubbed once it went through `Scrubber.scrub_review`)."""

    verdict: str
    flags: tuple[str, ...] = ()
    note: str | None = None
    corrected_draft: str | None = None


def review_flags(labels: Iterable[str]) -> tuple[str, ...]:
    """The flags a review may carry: the four built in, then `labels` (FLUSSO_REVIEW_LABELS)."""
    return tuple(dict.fromkeys([*BASE_FLAGS, *labels]))


def validate_review(verdict: Any, flags: Any, note: Any, corrected_draft: Any,
                    allowed_flags: Sequence[str]) -> ReviewInput:
    """The review described by form or JSON values; ReviewError naming the first bad field."""
    if not isinstance(verdict, str) or verdict.strip() not in VERDICTS:
        shown = verdict[:40] if isinstance(verdict, str) else verdict
        raise ReviewError("verdict", f"expected one of {', '.join(VERDICTS)}, got {shown!r}")
    if flags is None:
        flags = []
    if isinstance(flags, str):
        flags = [flags]
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ReviewError("flags", "expected a list of flag names")
    names = [f.strip() for f in flags if f.strip()]
    if len(names) > MAX_FLAGS:
        raise ReviewError("flags", f"at most {MAX_FLAGS} flags")
    for name in names:
        if name not in allowed_flags:
            raise ReviewError("flags", f"unknown flag {name[:40]!r}; expected some of {', '.join(allowed_flags)}")
    return ReviewInput(verdict.strip(), tuple(dict.fromkeys(names)),
                       _text("note", note, MAX_NOTE_CHARS), _text("corrected_draft", corrected_draft, MAX_DRAFT_CHARS))


def _text(field: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReviewError(field, "expected text")
    value = value.replace("\r\n", "\n").replace("\x00", "").strip()
    if len(value) > limit:
        raise ReviewError(field, f"at most {limit:,} characters, got {len(value):,}")
    return value or None


class Scrubber:
    """The bridge's free-text detectors with a server-side key: secrets, emails, IBANs, cards and
    phone numbers in a note become keyed tokens. Long enough a limit that nothing is truncated."""

    def __init__(self, key: str | bytes):
        self._redactor = Redactor(key, max_string_chars=MAX_DRAFT_CHARS)

    def token(self, kind: str, value: str) -> str:
        """The token a note's `value` of `kind` became (an erasure by raw identifier looks for it)."""
        return self._redactor.token(kind, value)

    def scrub(self, text: str | None) -> str | None:
        return None if text is None else self._redactor.scrub_text(text)

    def scrub_review(self, review: ReviewInput) -> ReviewInput:
        """`review` with its note and corrected draft scrubbed (what the store may keep)."""
        return replace(review, note=self.scrub(review.note), corrected_draft=self.scrub(review.corrected_draft))
