"""Webhook targets (FLUSSO_WEBHOOK_ALLOW) against adversarial entries and DNS answers: a name
entry reaches public unicast addresses only, on its port or the scheme's default, however the
address is spelt; an IP or CIDR the operator lists is allowed as written."""
from __future__ import annotations

import psycopg
import pytest

from collector_api.alerts.targets import parse_allow_list, public_unicast
from collector_api.alerts.webhooks import post_webhook
from tests.alerts.helpers import Receiver

# What a hostile DNS answer for an allowed name may be: none of these may be reached by name.
INSIDE = ["127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "10.1.2.3", "172.16.0.1", "192.168.1.1",
          "100.64.0.1", "100.100.100.200", "169.254.169.254", "169.254.170.2", "fe80::1", "fd00:ec2::254",
          "fc00::1", "::ffff:169.254.169.254", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:100.100.100.200",
          "2002:a9fe:a9fe::1", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe", "::7f00:1", "224.0.0.1", "ff02::1",
          "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.10", "2001:db8::1", "192.0.0.170"]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize("address", INSIDE)
def test_a_name_entry_never_reaches_an_inside_address(address):
    allow = parse_allow_list("hooks.example.com, hooks.example.com:8443")
    for port, scheme in ((443, "https"), (8443, "https"), (80, "http")):
        assert not allow.allows("hooks.example.com", port, address, scheme), (address, port)


@pytest.mark.parametrize("address", PUBLIC)
def test_a_name_entry_reaches_public_addresses_on_the_default_port_only(address):
    allow = parse_allow_list("Hooks.Example.COM.")  # case and a trailing dot do not matter
    assert allow.allows("hooks.example.com", 443, address, "https")
    assert allow.allows("HOOKS.example.com.", 80, address, "http")
    assert not allow.allows("hooks.example.com", 8443, address, "https")  # not the default port
    assert not allow.allows("hooks.example.com", 80, address, "https")
    assert not allow.allows("hooks.example.com", 22, address, "http")
    assert not allow.allows("evil.example.com", 443, address, "https")  # another name
    assert not allow.allows("hooks.example.com.evil.net", 443, address, "https")
    ported = parse_allow_list("hooks.example.com:8443")
    assert ported.allows("hooks.example.com", 8443, address, "https")
    assert not ported.allows("hooks.example.com", 443, address, "https")  # the port given, only


def test_ips_and_cidrs_the_operator_lists_are_allowed_as_written():
    allow = parse_allow_list("127.0.0.1:8080, 10.0.0.0/8, [fd00:ec2::254]:80, 169.254.169.254/32, 192.168.1.5")
    assert allow.allows("127.0.0.1", 8080, "127.0.0.1", "http")
    assert not allow.allows("127.0.0.1", 8081, "127.0.0.1", "http")  # the port given
    assert allow.allows("internal.corp", 9000, "10.1.2.3", "http")  # the CIDR, any name and port
    assert allow.allows("internal.corp", 9000, "::ffff:10.1.2.3", "http")  # mapped, unwrapped
    assert allow.allows("[fd00:ec2::254]", 80, "fd00:ec2::254", "http")
    assert allow.allows("metadata", 80, "169.254.169.254", "http")  # named by the operator itself
    assert allow.allows("printer", 631, "192.168.1.5", "http") and allow.allows("x", 1, "::ffff:192.168.1.5")
    assert not allow.allows("internal.corp", 9000, "11.0.0.1", "http")
    assert not allow.allows("127.0.0.1", 8080, "127.0.0.2", "http")


def test_the_predicate_itself():
    assert all(not public_unicast(__import__("ipaddress").ip_address(a)) for a in INSIDE)
    assert all(public_unicast(__import__("ipaddress").ip_address(a)) for a in PUBLIC)


def test_a_name_entry_for_a_loopback_receiver_is_refused_at_send_time():
    """A real receiver on 127.0.0.1, reached as `localhost`: the name entry (even with its port)
    does not allow it, the IP entry does."""
    with Receiver() as rx:
        url = rx.url.replace("127.0.0.1", "localhost")
        refused = post_webhook(url, b"{}", {}, parse_allow_list(f"localhost:{rx.port}"), timeout_s=5)
        assert refused.http_status is None and "not allowed by FLUSSO_WEBHOOK_ALLOW" in refused.error
        assert rx.requests == []
        sent = post_webhook(url, b"{}", {}, parse_allow_list(f"127.0.0.1:{rx.port}"), timeout_s=5)
        assert sent.ok and len(rx.requests) == 1


def test_a_refused_target_is_recorded_and_retried_like_any_failed_attempt(db_dsn):
    from tests.alerts.helpers import insert_logs, make_rule, tick

    insert_logs(db_dsn, "acme", ["FAILED"] * 3)
    with Receiver() as rx:
        make_rule(db_dsn, rx.url.replace("127.0.0.1", "localhost"))
        tick(db_dsn, f"localhost:{rx.port}")
        assert rx.requests == []
    with psycopg.connect(db_dsn) as conn:
        error, status = conn.execute("SELECT a.error, d.status FROM alert_delivery_attempts a"
                                     " JOIN alert_deliveries d ON d.id = a.delivery_id").fetchone()
    assert "not allowed" in error and status == "pending"
