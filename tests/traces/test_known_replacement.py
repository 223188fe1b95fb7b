"""Assembly's second pass replaces only the trace's known person values (no pattern detectors):
tokens from the first pass stay as they are (never hashed twice), values are replaced in keys,
nested structures and any letter case, and a hostile structure never leaks a raw value."""
from __future__ import annotations

from otel_bridge.pii import REDACTION_FAILED, Redactor, known_values

R = Redactor(b"k" * 32)


def test_replaces_known_values_everywhere_and_keeps_tokens() -> None:
    known = known_values({}, (), [("Giulia Bianchi", "name"), ("ann@example.com", "email")])
    first = R.scrub_text("mail ann@example.com from bob@example.org")  # the arrival pass
    assert "[email:" in first and "example" not in first
    value = {"GIULIA": [first, "Dear giulia bianchi,", {"note": "ANN@EXAMPLE.COM wrote"}], "n": 3, "ok": True}
    out = R.replace_known(value, known)
    text = repr(out)
    for raw in ("giulia", "bianchi", "ann@example", "bob@example"):
        assert raw not in text.lower()
    assert out["n"] == 3 and out["ok"] is True  # type: ignore[index]
    assert [v for v in out.values() if isinstance(v, list)][0][0] == first  # type: ignore[union-attr]
    assert R.replace_known(first, known) == first  # a token is never re-hashed


def test_no_known_values_and_word_edges() -> None:
    assert R.replace_known("anything at all", known_values({}, (), [])) == "anything at all"
    known = known_values({}, (), [("Ann", "name")])
    assert R.replace_known("Annual report", known) == "Annual report"  # a longer word of letters
    assert "Ann" not in str(R.replace_known("to Ann_x, re: ann.", known))


def test_hostile_structures_fail_safe() -> None:
    known = known_values({}, (), [("Giulia Bianchi", "name")])
    deep: object = "Giulia Bianchi"
    for _ in range(100):
        deep = [deep]
    assert "Giulia" not in repr(R.replace_known(deep, known))

    class Boom:
        def __repr__(self) -> str:
            raise RuntimeError("Giulia Bianchi")

    assert R.replace_known({"x": Boom()}, known) == {"x": REDACTION_FAILED}
