"""The judge client against a fake OpenAI-compatible server on 127.0.0.1: deterministic, slow,
malformed answers, 500s, timeouts, redirects; the rubric filled without format injection."""
from __future__ import annotations

import json

import pytest

from collector_api.evals.judge import JudgeConfig, JudgeConfigError, check_judge_url, judge_prompt, new_client
from collector_api.evals.rubric import InvalidAnswer, fill_rubric, parse_answer
from tests.evals.helpers import FakeJudge, build_log
from tests.helpers import run_async


def config(url: str, **kw) -> JudgeConfig:
    base = {"model": "judge-1", "api_key": "sk-test-key", "timeout_s": 2.0, "retries": 2, "backoff_base_s": 0.01,
            "usd_per_input_mtok": 0.15, "usd_per_output_mtok": 0.6}
    return JudgeConfig(url=url, **{**base, **kw})


def ask(cfg: JudgeConfig, prompt: str = "grade this"):
    async def go():
        async with new_client(cfg) as client:
            return await judge_prompt(client, cfg, prompt)
    return run_async(go())


def test_a_valid_answer_is_a_score_with_its_cost():
    with FakeJudge(lambda n, req: ("ok", 0.8, "supported by kb-7")) as judge:
        result = ask(config(judge.url))
    assert result.answer is not None and result.answer.score == 0.8 and result.answer.reason == "supported by kb-7"
    assert result.cost_usd == pytest.approx((1000 * 0.15 + 20 * 0.6) / 1e6)
    request = judge.requests[0]
    assert request["model"] == "judge-1" and request["temperature"] == 0
    assert request["messages"][-1] == {"role": "user", "content": "grade this"}
    assert judge.headers[0]["Authorization"] == "Bearer sk-test-key"


@pytest.mark.parametrize("content", [
    "not json", '{"score": 1.5, "reason": "x"}', '{"score": -0.1, "reason": "x"}', '{"score": true, "reason": "x"}',
    '{"score": "0.9", "reason": "x"}', '{"score": NaN, "reason": "x"}', '{"score": 0.5}',
    '{"score": 0.5, "reason": "x", "extra": 1}', '[0.5, "x"]', '{"score": 0.5, "reason": ' + '"' + "r" * 600 + '"}',
])
def test_malformed_answers_are_invalid_and_not_retried(content):
    with FakeJudge(lambda n, req: ("content", content)) as judge:
        result = ask(config(judge.url))
    assert result.answer is None and result.invalid
    assert len(judge.requests) == 1
    assert result.cost_usd > 0  # the call was paid for all the same


def test_a_body_that_is_not_a_chat_completion_is_invalid():
    with FakeJudge(lambda n, req: ("raw", b"<html>hello</html>")) as judge:
        assert ask(config(judge.url)).invalid
    with FakeJudge(lambda n, req: ("raw", json.dumps({"choices": []}).encode())) as judge:
        assert ask(config(judge.url)).invalid


def test_500s_are_retried_with_backoff_then_succeed_or_fail():
    with FakeJudge(lambda n, req: ("status", 500) if n < 2 else ("ok", 0.3, "meh")) as judge:
        result = ask(config(judge.url, retries=2))
    assert result.answer is not None and result.answer.score == 0.3 and len(judge.requests) == 3
    with FakeJudge(lambda n, req: ("status", 503)) as judge:
        result = ask(config(judge.url, retries=2))
    assert result.answer is None and not result.invalid and "HTTP 503" in result.error
    assert len(judge.requests) == 3  # one try and two retries


def test_429_is_retried_and_other_4xx_are_not():
    with FakeJudge(lambda n, req: ("status", 429) if n == 0 else ("ok", 1, "ok")) as judge:
        assert ask(config(judge.url)).answer.score == 1.0
    with FakeJudge(lambda n, req: ("status", 401)) as judge:
        result = ask(config(judge.url))
    assert result.error == "error: HTTP 401" and len(judge.requests) == 1


def test_a_slow_answer_within_the_deadline_counts():
    with FakeJudge(lambda n, req: ("sleep", 0.5, ("ok", 0.6, "slow but fine"))) as judge:
        result = ask(config(judge.url, timeout_s=3.0))
    assert result.answer.score == 0.6 and len(judge.requests) == 1


def test_an_answer_beyond_the_total_deadline_is_a_timeout_retried_then_an_error():
    with FakeJudge(lambda n, req: ("sleep", 3.0, ("ok", 0.6, "too late"))) as judge:
        result = ask(config(judge.url, timeout_s=0.3, retries=1))
    assert result.answer is None and "within 0.3 s" in result.error and len(judge.requests) == 2


def test_redirects_are_not_followed():
    with FakeJudge(lambda n, req: ("status", 302)) as judge:
        result = ask(config(judge.url))
    assert result.answer is None and "HTTP 302" in result.error and len(judge.requests) == 1


@pytest.mark.parametrize("url", ["", "ftp://judge/x", "http://user:pw@judge/x", "http://:99999/", "judge.local"])
def test_judge_url_is_checked(url):
    with pytest.raises(JudgeConfigError):
        check_judge_url(url)


def test_rubric_placeholders_are_plain_text_and_values_are_not_expanded():
    log = build_log(draft="Use {{ticket}} and {0.__class__} here.")
    text = fill_rubric("D: {{draft}} | S: {{ status }} | {0.__class__} {{unknown}}", log)
    assert text == "D: Use {{ticket}} and {0.__class__} here. | S: SUCCESS | {0.__class__} {{unknown}}"


def test_parse_answer_accepts_integers_and_strips_the_reason():
    assert parse_answer('{"score": 1, "reason": " ok "}').score == 1.0
    with pytest.raises(InvalidAnswer):
        parse_answer(None)
