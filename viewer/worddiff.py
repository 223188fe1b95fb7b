"""A word-level diff of two texts, for the experiment page (expected vs new draft). Pure.

The result is a list of segments `{"op": "same" | "del" | "ins", "text": ...}` that the template
renders as text inside <del>/<ins> (autoescaped: the texts are model output and customer data).
Long texts are cut to MAX_WORDS words each, so one huge draft cannot cost seconds of CPU.
"""
from __future__ import annotations

import difflib
import re

MAX_WORDS = 2_000
_TOKENS = re.compile(r"\s+|\S+\s*")  # leading whitespace alone, then each word with the whitespace after it


def _words(text: str | None) -> list[str]:
    tokens = _TOKENS.findall(text or "")
    if len(tokens) > MAX_WORDS:
        return [*tokens[:MAX_WORDS], "…"]
    return tokens


def word_diff(expected: str | None, new: str | None) -> list[dict[str, str]]:
    """Segments turning `expected` into `new`: words kept, deleted and inserted. Words are compared
    without the whitespace after them; a kept word is shown as the new text has it."""
    a, b = _words(expected), _words(new)
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in a], [t.strip() for t in b], autojunk=False)
    segments: list[dict[str, str]] = []

    def add(op: str, tokens: list[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if segments and segments[-1]["op"] == op:
            segments[-1]["text"] += text
        else:
            segments.append({"op": op, "text": text})

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("same", b[j1:j2])
        else:
            add("del", a[i1:i2])
            add("ins", b[j1:j2])
    return segments


def changed(segments: list[dict[str, str]]) -> bool:
    """Whether the diff changes anything but whitespace."""
    return any(s["op"] != "same" and s["text"].strip() for s in segments)
