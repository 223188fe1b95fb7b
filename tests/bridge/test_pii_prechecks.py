"""The cheap pre-checks of the pattern pass (otel_bridge.pii) decide exactly as the patterns they
guard: a digit is any Unicode decimal digit (Arabic-Indic, fullwidth), and a secret hint is found
in any letter case, GitHub prefixes included."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bridge.pii import _DIGIT_RE, _SECRET_HINT_RE, Redactor, _has_digit, _secret_hint

R = Redactor(b"k" * 32)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("ab 7-_GgHhPp٣３𝟘é\u00b2\u2155")), max_size=30) | st.text(max_size=40))
def test_has_digit_is_the_regex(text: str) -> None:
    assert _has_digit(text) == (_DIGIT_RE.search(text) is not None)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["x", " ", "GHP_", "gh", "p_", "Bearer ", "BASIC\t", "sk-", "Akia", "xOx",
                                 "-----BEGIN", "eYJ", "aIza", "ghr_", "g", "h"]), max_size=8).map("".join))
def test_secret_hint_is_a_superset_of_the_regex(text: str) -> None:
    if _SECRET_HINT_RE.search(text):
        assert _secret_hint(text.lower())


def test_unicode_digits_still_reach_the_phone_and_card_detectors() -> None:
    plain = R.scrub_text("call +39 347 555 0199 now")
    assert "0199" not in plain and "[phone:" in plain
    assert R.scrub_text("token ghp_" + "a" * 24) != "token ghp_" + "a" * 24
