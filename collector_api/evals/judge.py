"""The LLM judge: one OpenAI-compatible chat completion per log, with a total deadline per
attempt, retries with backoff, and a cost per call.

The URL, model and key are the operator's settings (FLUSSO_JUDGE_URL, FLUSSO_JUDGE_MODEL,
FLUSSO_JUDGE_API_KEY); no tenant and no page can set them. Redirects are never followed, the
answer is read up to MAX_RESPONSE_BYTES, and each attempt has a TOTAL deadline
(FLUSSO_JUDGE_TIMEOUT_S, an explicit clock: httpx's own timeouts apply per read, so a server
dribbling bytes would never time out). Retried: transport errors, the deadline, 429 and 5xx,
up to `retries` times with exponential backoff and jitter. Not retried: other 4xx and invalid
answers (collector_api.evals.rubric.parse_answer), which are counted and never stored as scores.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from collector_api.evals.rubric import SYSTEM, InvalidAnswer, JudgeAnswer, parse_answer

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 256 * 1024
BACKOFF_BASE_S = 0.5
USER_AGENT = "flusso-obs-evals/1"


class JudgeConfigError(ValueError):
    """FLUSSO_JUDGE_URL is not an http(s) URL with a host and no credentials."""


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    retries: int = 3
    concurrency: int = 16
    usd_per_input_mtok: float = 0.0
    usd_per_output_mtok: float = 0.0
    backoff_base_s: float = BACKOFF_BASE_S


@dataclass(frozen=True)
class JudgeResult:
    answer: JudgeAnswer | None
    cost_usd: float
    error: str | None = None  # set when no answer: "invalid: ..." (counted) or a failure after the retries

    @property
    def invalid(self) -> bool:
        return self.error is not None and self.error.startswith("invalid")


def check_judge_url(url: str) -> str:
    """The URL, stripped; raises JudgeConfigError."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise JudgeConfigError(f"FLUSSO_JUDGE_URL: not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
        raise JudgeConfigError("FLUSSO_JUDGE_URL: expected an http:// or https:// URL with a host,"
                               " e.g. https://api.openai.com/v1/chat/completions")
    if parts.username or parts.password:
        raise JudgeConfigError("FLUSSO_JUDGE_URL: no credentials in the URL (use FLUSSO_JUDGE_API_KEY)")
    return url


def new_client(config: JudgeConfig) -> httpx.AsyncClient:
    """One client per job run (its connections bounded by the concurrency)."""
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    return httpx.AsyncClient(follow_redirects=False, limits=limits, timeout=config.timeout_s, trust_env=False)


def call_cost(config: JudgeConfig, usage: object, prompt_chars: int) -> float:
    """USD of one call from its reported usage (or ~4 characters a token when it reports none)."""
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        tokens_in, tokens_out = usage["prompt_tokens"], usage.get("completion_tokens") or 0
    else:
        tokens_in, tokens_out = prompt_chars // 4 + 1, 0
    tokens_out = tokens_out if isinstance(tokens_out, int) else 0
    return (max(0, tokens_in) * config.usd_per_input_mtok + max(0, tokens_out) * config.usd_per_output_mtok) / 1e6


class _Retry(Exception):
    """A failure worth another attempt."""


async def _attempt(client: httpx.AsyncClient, config: JudgeConfig, body: bytes) -> dict:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    try:
        async with asyncio.timeout(config.timeout_s):
            async with client.stream("POST", config.url, content=body, headers=headers) as response:
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise InvalidAnswer(f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
    except TimeoutError:
        raise _Retry(f"no complete answer within {config.timeout_s:g} s (FLUSSO_JUDGE_TIMEOUT_S)") from None
    except httpx.HTTPError as exc:
        raise _Retry(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retry(f"HTTP {response.status_code}")
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}")
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise InvalidAnswer("the response is not JSON") from None


def _content(data: object) -> object:
    try:
        return data["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise InvalidAnswer("no choices[0].message.content in the response") from None


async def judge_prompt(client: httpx.AsyncClient, config: JudgeConfig, prompt: str) -> JudgeResult:
    """Ask the judge once (with retries); never raises for what the endpoint does."""
    body = json.dumps({"model": config.model, "temperature": 0, "response_format": {"type": "json_object"},
                       "messages": [{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": prompt}]}).encode()
    last = "no attempt"
    for attempt in range(config.retries + 1):
        if attempt:
            await asyncio.sleep(config.backoff_base_s * 2 ** (attempt - 1) * (0.5 + random.random()))
        try:
            data = await _attempt(client, config, body)
        except _Retry as exc:
            last = str(exc)
            continue
        except RuntimeError as exc:
            return JudgeResult(None, 0.0, f"error: {exc}")
        except InvalidAnswer as exc:
            return JudgeResult(None, call_cost(config, None, len(prompt)), f"invalid: {exc}")
        cost = call_cost(config, data.get("usage") if isinstance(data, dict) else None, len(prompt))
        try:
            return JudgeResult(parse_answer(_content(data)), cost)
        except InvalidAnswer as exc:
            return JudgeResult(None, cost, f"invalid: {exc}")
    return JudgeResult(None, 0.0, f"error: {last} (after {config.retries + 1} attempts)")
