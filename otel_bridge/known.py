"""A trace's known person values, found in text in one pass. Pure.

A value written in one field (``requester_name``, ``user.id``, a "Name <email>") is replaced
wherever it recurs in the trace's text (a draft that greets the customer by name). Matching is
linear in the text whatever the number of values: the text is cut into runs (letters, digits,
whitespace, any other single character) and a trie of the values' runs is walked from each run.
A value matches only whole runs at its edges, so ``Ann`` is found in ``Ann's`` and
``Giulia_Bianchi`` but not in ``Annual``; letter case and the kind of whitespace do not matter.
A pre-check on the value's first letter-or-digit run skips the texts that cannot hold one.

The values of one trace are capped (``cap``, 256 by default on both paths): beyond it a value
is not known (its own field is still hashed) and ``over_cap`` counts it, so one trace cannot
make its neighbours' work grow without bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from otel_bridge.pii_keys import ticket_field_kind

# A token ``[kind:hex]`` is never searched (a value must not match inside a token's hex).
TOKEN_BODY = r"[a-z_]{2,24}[:=][^\]\s]{1,80}+"
TOKEN_SPLIT_RE = re.compile(rf"(\[{TOKEN_BODY}\])")
_RUN_RE = re.compile(r"[^\W\d_]+|\d+|\s+|\S")
_ALNUM_RE = re.compile(r"[^\W\d_]+|\d+")
_LEADING = re.compile(r"^[\W_]+")
MIN_VALUE_CHARS = 3
MAX_VALUE_CHARS = 256
DEFAULT_CAP = 256
_SUBSTRING_CHECK_MAX = 16  # up to this many anchors a substring test beats cutting the text
_END = ""  # the trie's terminal key: no run is empty


def _run_key(run: str) -> str:
    return " " if run[0].isspace() else run.casefold()


def runs_of(value: str) -> list[str]:
    """The value's runs as the trie keys them (casefolded, whitespace as one space)."""
    return [_run_key(r) for r in _RUN_RE.findall(value)]


class KnownValues:
    """Person values of one trace, prepared once: (raw value, kind) pairs; the parts of a name
    (``Giulia`` of ``Giulia Bianchi``) are known too, but never replaced inside identifiers."""

    __slots__ = ("pairs", "over_cap", "cache", "_trie", "_anchors")

    def __init__(self, pairs: Iterable[tuple[str, str]] = (), *, cap: int | None = DEFAULT_CAP):
        self.pairs: list[tuple[str, str]] = []
        self.over_cap = 0
        self.cache: dict[str, str] = {}  # scrubbed strings of this trace (they repeat)
        self._trie: dict[str, Any] = {}
        self._anchors: set[str] = set()
        full: set[str] = set()
        parts: dict[str, tuple[str, str]] = {}
        for raw, kind in pairs:
            value = str(raw).strip()
            if not MIN_VALUE_CHARS <= len(value) <= MAX_VALUE_CHARS:
                continue
            key = value.casefold()
            if key in full:
                continue
            if cap is not None and len(full) >= cap:
                self.over_cap += 1
                continue
            full.add(key)
            self._add(value, kind, part=False)
            if kind == "name":
                for part in value.split():
                    if len(part) >= MIN_VALUE_CHARS:
                        parts.setdefault(part.casefold(), (part, kind))
        for key, (part, kind) in parts.items():
            if key not in full:
                self._add(part, kind, part=True)

    def _add(self, value: str, kind: str, part: bool) -> None:
        # A value is matched from its first letter-or-digit run (a leading "+" or "(" of a phone
        # number stays in the text, its digits do not).
        runs = runs_of(_LEADING.sub("", value))
        anchor = runs[0] if runs and runs[0][0].isalnum() else None
        if anchor is None:  # no letter or digit: nothing personal to find
            return
        node = self._trie
        for run in runs:
            node = node.setdefault(run, {})
        if _END not in node:
            node[_END] = (value, kind, part)
            self.pairs.append((value, kind))
            self._anchors.add(anchor)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def may_occur(self, text: str) -> bool:
        """False only when no value can be in ``text`` (its first letter-or-digit run is not
        one of the text's). Any text whose runs are those of the text to replace in will do,
        e.g. a JSON document of strings (escapes cut runs only where the text had a separator)."""
        if not self._anchors:
            return False
        folded = text.casefold()
        if len(self._anchors) <= _SUBSTRING_CHECK_MAX:
            return any(anchor in folded for anchor in self._anchors)
        return not self._anchors.isdisjoint(_ALNUM_RE.findall(folded))

    def replace(self, text: str, token: Callable[[str, str], str], *, parts: bool = True) -> str:
        """``text`` with every known value replaced by ``token(kind, raw value)``; existing
        tokens are kept as they are. ``parts=False``: whole values only (for identifiers)."""
        if not self.may_occur(text):
            return text
        if "[" not in text:
            return self._replace_segment(text, token, parts)
        pieces = TOKEN_SPLIT_RE.split(text)  # tokens at the odd indexes
        pieces[::2] = [self._replace_segment(p, token, parts) if p else p for p in pieces[::2]]
        return "".join(pieces)

    def _replace_segment(self, text: str, token: Callable[[str, str], str], parts: bool) -> str:
        # Every value starts with a letter-or-digit run: only where such a run of the text is a
        # first run of a value is the trie walked. The runs are found by C code on the
        # casefolded text when casefolding keeps every position (nearly always).
        folded = text.casefold()
        source = folded if len(folded) == len(text) else text
        trie = self._trie
        runs = _ALNUM_RE.findall(source)
        hits = [i for i, run in enumerate(runs) if run in trie] if source is folded \
            else [i for i, run in enumerate(runs) if run.casefold() in trie]
        if not hits:
            return text
        out: list[str] = []
        done = 0  # text[:done] is in out
        found = _ALNUM_RE.finditer(text)
        at = -1
        for i in hits:
            m = next(islice(found, i - at - 1, None))  # the text's i-th run
            at = i
            if m.start() < done:
                continue  # inside the previous match
            hit = self._walk(text, m, parts)
            if hit is not None:
                end, (raw, kind, _) = hit
                out += (text[done:m.start()], token(kind, raw))
                done = end
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

    def _walk(self, text: str, first: re.Match[str], parts: bool) -> tuple[int, tuple[str, str, bool]] | None:
        """The longest value starting at the run ``first``: (its end, its terminal)."""
        node = self._trie[first.group().casefold()]
        best = None
        end = first.end()
        while True:
            term = node.get(_END)
            if term is not None and (parts or not term[2]):
                best = (end, term)
            run = _RUN_RE.match(text, end)
            if run is None:
                return best
            node = node.get(_run_key(run.group()))
            if node is None:
                return best
            end = run.end()


def known_values(fields: Mapping[str, object], marked: Iterable[str] = (),
                 extra: Iterable[tuple[str, str]] = (), *, cap: int | None = DEFAULT_CAP,
                 skip: Iterable[str] = ()) -> KnownValues:
    """The known values of a ticket: ``extra`` (value, kind) pairs (record.pii, person
    attributes, names written with an email) first, then the values of its personal fields by
    key (``ticket_field_kind``; ``marked`` keys as text; ``skip`` keys not). The parts of a
    name are known too."""
    skipped = {k.lower() for k in skip}
    pairs: list[tuple[str, str]] = [(str(raw), str(kind)) for raw, kind in extra if isinstance(raw, (str, int))
                                    and not isinstance(raw, bool)]
    marked_set = {m.lower() for m in marked}
    for key, value in fields.items():
        kind = ticket_field_kind(str(key)) or ("text" if str(key).lower() in marked_set else None)
        if kind is None or str(key).lower() in skipped and str(key).lower() not in marked_set:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, (str, int)) and not isinstance(v, bool):
                pairs.append((str(v), kind))
    return KnownValues(pairs, cap=cap)
