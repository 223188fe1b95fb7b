"""What the viewer's requests share: pool, settings, session codec, login limiter, templates."""
from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from collector_api.store.core.job_status import JobBoard
from config.server import ServerSettings

from .auth import FailureDelay, LoginLimiter, PasswordVerifier, SessionCodec


@dataclass
class ViewerContext:
    pool: AsyncConnectionPool
    settings: ServerSettings
    codec: SessionCodec
    limiter: LoginLimiter
    env: object  # jinja2.Environment
    verifier: PasswordVerifier = field(default_factory=lambda: PasswordVerifier(1))
    failures: FailureDelay = field(default_factory=FailureDelay)
    menu_cache: dict = field(default_factory=dict)  # tenant -> (monotonic time, filter menu values)
    review_flags: tuple[str, ...] = ()  # flags a review may carry (built in + FLUSSO_REVIEW_LABELS)
    scrubber: object = None  # contract.review_text.Scrubber: the PII detectors applied to review notes
    jobs: JobBoard = field(default_factory=JobBoard)  # the background jobs' lag (the job runner writes it)

    def cookie_secure(self, request: Request) -> bool:
        """FLUSSO_COOKIE_SECURE: true/false, or auto: when this request came over HTTPS (uvicorn
        sets the scheme from X-Forwarded-Proto only for the proxies in FLUSSO_FORWARDED_ALLOW_IPS)."""
        mode = self.settings.flusso_cookie_secure
        return request.url.scheme == "https" if mode == "auto" else mode == "true"
