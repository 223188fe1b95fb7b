"""A display name written with its email address is a person value (otel_bridge.policy), found
in linear time; a name that the address does not bear out is not."""
from __future__ import annotations

import time

import pytest

from otel_bridge.policy import discovered_values, names_with_email


@pytest.mark.parametrize("text, name", [
    ("Jane Doe <jane.doe@example.com>", "Jane Doe"),
    ("I am Jane Doe (jane.doe@example.com), thanks", "Jane Doe"),
    ("Hello, from John Smith <jsmith@corp.com> ok", "John Smith"),
    ("Jörg Müller <joerg.mueller@example.de>", "Jörg Müller"),
    ("Zoë Ångström [zoe.angstrom@example.se]", "Zoë Ångström"),
    ('"Jane Doe" <jane.doe@example.com>', "Jane Doe"),
])
def test_names_written_with_their_email(text: str, name: str) -> None:
    found = names_with_email(text)
    assert (name, "name") in found and any(kind == "email" for _, kind in found)


@pytest.mark.parametrize("text", [
    "Support Team <help@example.io>", "write to ann@example.com", "Dear Jane, see jane.doe@example.com",
    "I AM <x@y.zz>", "", "no at sign here (Jane Doe)",
])
def test_no_name_without_an_address_that_bears_it_out(text: str) -> None:
    assert [v for v, k in names_with_email(text) if k == "name"] == []


def test_behind_a_json_escape_too() -> None:
    assert ("Jane Doe", "name") in discovered_values(['{"from": "Jane Doe <jane.doe\\u0040example.com>"}'])


@pytest.mark.parametrize("hostile", ["A" * 16_000 + " <a@b.com>", "Ab " * 6_000 + "<a@b.com>", "Ab-" * 6_000 + "@",
                                     "A." * 8_000 + "@", ("Ab " * 3 + "<" + "a" * 100 + "@b.com> ") * 150])
def test_linear_on_hostile_input(hostile: str) -> None:
    started = time.perf_counter()
    names_with_email(hostile)
    assert time.perf_counter() - started < 0.1
