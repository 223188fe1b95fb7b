"""The deterministic evaluators on hand-built logs, each expected score computed by hand
(the comment above each case says how)."""
from __future__ import annotations

import pytest

from collector_api.evals.deterministic import claim_facts, draft_complete, groundedness, language_match
from collector_api.evals.language import detect_language
from collector_api.evals.policy import PolicyError, check_patterns, forbidden_found
from collector_api.evals.run import policy_verdict
from tests.evals.helpers import build_log

DRAFT = ("Hello [name:abcdef123456], your order A-77 shipped on 2026-11-30. It costs 45.90 EUR. "
         "The Widget Pro is in stock. Thanks for waiting!")
EVIDENCE = {"items": [{"source": "kb-7", "claim": "Order A-77 shipped 2026-11-30"}], "conflicts": [],
            "resolution": "kb-7"}
RETRIEVAL = {"text": {"query": "stock", "results": [{"id": "kb-9", "title": "Widget Pro availability", "score": 0.8}]}}


def test_claims_of_a_sentence_are_its_ids_dates_numbers_and_names():
    # The date swallows 2026, 11 and 30; the id swallows 77; "Hello" opens the sentence; the
    # redaction token is not a claim.
    assert claim_facts("Hello [name:abcdef123456], your order A-77 shipped on 2026-11-30.") == {"a-77", "2026-11-30"}
    assert claim_facts("It costs 45.90 EUR.") == {"45.90", "eur"}
    assert claim_facts("The Widget Pro is in stock.") == {"widget", "pro"}
    assert claim_facts("Thanks for waiting!") == set()


def test_groundedness_is_the_share_of_claims_found_in_evidence_and_retrieval():
    # Claims: {a-77, 2026-11-30} (in the evidence item), {45.90, eur} (nowhere),
    # {widget, pro} (in the retrieval result's title): 2 of 3.
    verdict = groundedness(build_log(draft=DRAFT, evidence=EVIDENCE, retrieval=RETRIEVAL))
    assert verdict.score == pytest.approx(2 / 3)
    assert verdict.reason.startswith("2 of 3 claims") and "45.90" in verdict.reason and "eur" in verdict.reason


def test_groundedness_without_evidence_scores_zero_and_without_claims_is_not_applicable():
    # Same three claims, nothing to find them in: 0 of 3.
    assert groundedness(build_log(draft=DRAFT)).score == 0.0
    assert groundedness(build_log(draft="Thanks for your patience, we are on it.")).score is None
    assert groundedness(build_log(draft=None)).score is None


def test_groundedness_reads_every_retrieval_source_and_the_resolution():
    # One claim {b-12} found only in the vision source's results: 1 of 1.
    log = build_log(draft="Replace part B-12 please.", retrieval={
        "text": {"results": [{"id": "kb-1", "title": "other"}]},
        "vision": {"results": [{"id": "img-3", "caption": "part b-12 cracked"}]}})
    assert groundedness(log).score == 1.0


@pytest.mark.parametrize(("draft", "score"), [
    (None, 0.0), ("", 0.0), ("   ", 0.0),
    ("We will refund you…[truncated 120 chars]", 0.0),  # the bridge's truncation mark
    ("We will refund you", 0.5),  # ends mid-sentence
    ("We will refund you.", 1.0), ("Done!", 1.0),
])
def test_draft_complete(draft, score):
    assert draft_complete(build_log(draft=draft)).score == score


ITALIAN_TICKET = {"subject": "Dov'è il mio ordine?", "description": "Non ho ricevuto il pacco, grazie per l'aiuto"}


def test_language_of_draft_against_ticket():
    # Ticket: il, il, non, per, grazie -> 5 Italian stopwords. English draft: thank, you, your,
    # order, has, been, and, will -> en. Italian draft: grazie, il, suo, ordine, è -> it.
    english = "Thank you, your order has been shipped and will arrive soon."
    italian = "Grazie, il suo ordine è stato spedito e arriverà presto."
    assert detect_language(" ".join(ITALIAN_TICKET.values())) == "it"
    assert language_match(build_log(draft=english, ticket=ITALIAN_TICKET)).score == 0.0
    assert language_match(build_log(draft=italian, ticket=ITALIAN_TICKET)).score == 1.0
    # A hashed ticket text (the default content mode) has no language: not applicable.
    assert language_match(build_log(draft=english, ticket={"subject": "[text:0a1b2c3d4e5f]"})).score is None


def test_policy_phrases_with_a_wildcard_stay_within_a_sentence():
    patterns = check_patterns(["guarantee * refund", "Legal   Action"])
    assert patterns == ["guarantee * refund", "legal action"]
    assert policy_verdict(patterns, build_log(draft="We GUARANTEE a full refund today.")).score == 0.0
    assert policy_verdict(patterns, build_log(draft="We guarantee delivery. A refund is possible.")).score == 1.0
    assert policy_verdict(patterns, build_log(draft="No legal\naction is needed.")).score == 0.0
    assert policy_verdict(patterns, build_log(draft=None)).score is None


def test_policy_patterns_are_bounded_and_cannot_backtrack():
    with pytest.raises(PolicyError):
        check_patterns(["x" * 201])
    with pytest.raises(PolicyError):
        check_patterns(["a"] * 51)
    with pytest.raises(PolicyError):
        check_patterns([" * "])
    # The classic catastrophic-backtracking shape, as phrases: plain finds, no regex engine.
    text = "a" * 20_000 + "!"
    assert forbidden_found(text, check_patterns(["a*a*a*a*a*a*b", "(a+)+$"])) == []
