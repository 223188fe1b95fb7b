import pytest

import otel_bridge
from config.bridge import BridgeSettings
from otel_bridge.pii import DEV_KEY, REDACTION_FAILED, Redactor, iban_ok, known_values, luhn_ok

R = Redactor("unit-test-key")


def test_tokens_are_keyed_stable_and_typed():
    a = R.token("email", "Jane@Example.com")
    assert a == R.token("email", "jane@example.com ")
    assert a.startswith("[email:") and len(a) == len("[email:]") + 12
    assert Redactor("other-key").token("email", "jane@example.com") != a


@pytest.mark.parametrize("raw,kind", [
    ("write to jane.roe+x@mail.example.org now", "email"),
    ("call +39 345 123 4567 please", "phone"),
    ("call (415) 555-0134", "phone"),
    ("card 4111 1111 1111 1111 exp", "card"),
    ("card 5500-0000-0000-0004", "card"),
    ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
    ("iban GB82WEST12345698765432.", "iban"),
    ("key sk-proj-AbCdEfGhIjKlMnOpQrSt123", "secret"),
    ("Authorization: Bearer abcDEF123456.xyz", "secret"),
    ("tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_123-abc", "secret"),
    ("password=hunter2", "secret"),
    ('{"api_key": "zz-top-123"}', "secret"),
    ("AKIAIOSFODNN7EXAMPLE", "secret"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----", "secret"),
])
def test_free_text_detectors(raw, kind):
    out = R.scrub_text(raw)
    assert f"[{kind}:" in out, out


@pytest.mark.parametrize("text", [
    "order A-77 shipped on 2026-11-25 at 10:15:02",
    "card 4111 1111 1111 1112 fails Luhn",
    "score 0.91, qty 3, version 1.2.3, id 12345678",
])
def test_ordinary_text_is_left_alone(text):
    assert R.scrub_text(text) == text


def test_luhn_and_iban_checks():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE00 3704 0044 0532 0130 00")


def test_known_values_are_replaced_in_free_text():
    known = known_values({"requester_name": "Giulia Bianchi", "requester_email": "g.b@example.com"})
    out = R.scrub_text("Dear Giulia Bianchi (Giulia), we wrote to G.B@example.com", known)
    assert "Giulia" not in out and "Bianchi" not in out and "example.com" not in out
    assert R.token("name", "Giulia Bianchi") in out


def test_dict_keys_bytes_and_field_names():
    out = R.scrub_value({"mario@example.com": {"requester_phone": "+39 333 1234567", "img": b"\x89PNG" * 100}})
    (key,) = out
    assert key.startswith("[email:")
    assert out[key]["requester_phone"].startswith("[phone:")
    assert out[key]["img"] == R.scrub_value(b"\x89PNG" * 100)
    assert "size=400" in out[key]["img"]


def test_long_strings_are_truncated_with_a_marker():
    r = Redactor("k", max_string_chars=100)
    out = r.scrub_text("x" * 1000)
    assert out.startswith("x" * 100) and out.endswith("[truncated 900 chars]")


def test_fail_safe_never_returns_the_raw_value(monkeypatch):
    r = Redactor("k")
    monkeypatch.setattr(r, "_email", lambda m: (_ for _ in ()).throw(RuntimeError("bug")))
    assert r.scrub_text("mail a@b.com") == REDACTION_FAILED

    class Bad:
        def __repr__(self):
            raise RuntimeError("no")
    assert R.scrub_value(Bad()) == REDACTION_FAILED


def test_production_without_key_is_a_configuration_error():
    with pytest.raises(otel_bridge.ConfigurationError, match="PII_HASH_KEY"):
        otel_bridge.configure(BridgeSettings(_env_file=None, environment="production"))
    otel_bridge.configure(BridgeSettings(_env_file=None, environment="production", pii_hash_key="s" * 32))
    otel_bridge.configure(BridgeSettings(_env_file=None, environment="test"))


def test_no_key_and_no_environment_is_a_configuration_error_naming_both(monkeypatch, tmp_path):
    # ENVIRONMENT defaults to "development": a service that sets neither variable must not
    # silently hash with the public development key (tokens reversible by dictionary).
    monkeypatch.chdir(tmp_path)  # no .env file
    for name in ("ENVIRONMENT", "PII_HASH_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(otel_bridge.ConfigurationError) as info:
        otel_bridge.configure()
    assert "PII_HASH_KEY" in str(info.value) and "ENVIRONMENT" in str(info.value)
    assert "not set" in str(info.value)
    with pytest.raises(otel_bridge.ConfigurationError, match="ENVIRONMENT"):
        otel_bridge.configure(BridgeSettings(_env_file=None))
    assert otel_bridge.stats() == {}  # nothing was set up


@pytest.mark.parametrize("how", ["env", "dotenv", "argument"])
def test_explicit_development_environment_allows_the_dev_key(monkeypatch, tmp_path, how, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PII_HASH_KEY", raising=False)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    if how == "env":
        monkeypatch.setenv("ENVIRONMENT", "development")
        state = otel_bridge.configure()
    elif how == "dotenv":
        (tmp_path / ".env").write_text("ENVIRONMENT=test\n")
        state = otel_bridge.configure()
    else:
        state = otel_bridge.configure(environment="development")
    email = "ann@example.com"
    assert state.pipeline.redactor.token("email", email) == Redactor(DEV_KEY).token("email", email)
    assert "insecure development key" in caplog.text


def test_a_key_needs_no_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.setenv("PII_HASH_KEY", "s" * 32)
    state = otel_bridge.configure()
    assert state.pipeline.redactor.token("email", "a@b.example") != Redactor(DEV_KEY).token("email", "a@b.example")
