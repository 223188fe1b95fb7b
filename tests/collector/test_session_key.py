"""The session key (collector_api.contract.sessions): precedence, shapes a hostile log may send,
one-way and tenant-specific."""
import pytest

from collector_api.contract.sessions import SESSION_KEY_RE, derive_session_key, session_key


def _log(**ticket):
    return {"trace": {"ticket": ticket}}


def test_precedence_conversation_then_email_then_phone_then_user():
    both = _log(conversation_id="c-1", requester_email="[email:aa]", requester_phone="[phone:bb]")
    assert session_key("acme", both) == derive_session_key("acme", "conv", "c-1")
    assert session_key("acme", _log(requester_email="[email:aa]", requester_phone="[phone:bb]")).startswith("email-")
    assert session_key("acme", _log(requester_phone="[phone:bb]")).startswith("phone-")
    assert session_key("acme", _log(user_id="[user:cc]")).startswith("user-")
    assert session_key("acme", _log(conversation_id=4711)) == derive_session_key("acme", "conv", "4711")


@pytest.mark.parametrize("document", [
    None, [], "text", {}, {"trace": None}, {"trace": []}, {"trace": {"ticket": "x"}}, {"trace": {"ticket": []}},
    _log(), _log(conversation_id=True, requester_email=["[email:aa]"]), _log(conversation_id="   "),
    _log(requester_email={"nested": "x"}), _log(requester_email=17), _log(conversation_id=None, email=""),
])
def test_shapes_without_a_session_give_none(document):
    assert session_key("acme", document) is None


def test_hostile_values_still_give_a_well_formed_key():
    for value in ("\ud800lone surrogate", "x" * 1_000_000, "'; DROP TABLE workflow_logs; --", "\u202eevil", "é" * 600):
        key = session_key("acme", _log(conversation_id=value))
        assert SESSION_KEY_RE.match(key), key
    # A value is cut at 512 characters: two conversation ids equal that far are one session.
    assert session_key("acme", _log(conversation_id="a" * 600)) == session_key("acme", _log(conversation_id="a" * 512))


def test_tenant_specific_and_not_the_raw_value():
    a, b = (session_key(c, _log(requester_email="[email:3f9d8e2b1c5a]")) for c in ("acme", "globex"))
    assert a != b and "3f9d8e2b1c5a" not in a + b
    assert session_key("acme", _log(conversation_id="ann@example.com")).startswith("conv-")
    assert "ann" not in session_key("acme", _log(conversation_id="ann@example.com"))
    # Fields are separated: ("ac", "me...") never collides with ("acme", ...).
    assert derive_session_key("ac", "email", "me\x1fx") != derive_session_key("acme", "email", "x")
