"""The shared form macros (templates/_forms.html): the ticket filter form offers every filter the
search parses, the review queue's form is its subset, the client picker is for providers only."""
from __future__ import annotations

import re

from collector_api.store.logs.reads import STATUSES
from viewer.auth import Principal
from viewer.query_params import FILTER_PARAMS
from viewer.render import create_environment

PROVIDER = Principal(role="provider", client_id=None)
CLIENT = Principal(role="client", client_id="acme")
MENUS = {"resolution_status": ["resolved"], "environment": ["production"], "workflow_version": ["2.3.0"]}


def _forms():
    return create_environment().get_template("_forms.html").module


def _names(html: str) -> list[str]:
    return re.findall(r'<(?:input|select)[^>]* name="([^"]+)"', str(html))


def test_the_ticket_filter_form_offers_every_filter_the_search_parses():
    html = _forms().filter_form("/tickets", PROVIDER, ["acme"], {}, STATUSES, menus=MENUS, review_flags=("tone",))
    assert _names(html) == [p for p in FILTER_PARAMS if p != "limit"]  # limit: the page size, set by links
    assert 'id="filters"' in html and 'id="apply-filters"' in html and '<a href="/tickets">Clear</a>' in html


def test_a_subset_form_keeps_the_order_and_labels_a_lone_upper_bound():
    html = _forms().filter_form("/reviews", CLIENT, [], {"max_confidence": "0.5"}, STATUSES,
                                fields=("range", "status", "ticket", "max_confidence"))
    assert _names(html) == ["start", "end", "status", "ticket", "max_confidence"]  # no client picker for a client
    assert "Confidence ≤" in html and 'name="max_confidence" value="0.5"' in html
    assert '<a href="/reviews">Clear</a>' in html


def test_the_client_picker_selects_and_escapes():
    forms = _forms()
    assert str(forms.client_picker(CLIENT, ["acme"], None)).strip() == ""
    html = str(forms.client_picker(PROVIDER, ["acme", "<b>"], "acme"))
    assert '<option value="acme" selected>' in html and "&lt;b&gt;" in html and "<b>" not in html
