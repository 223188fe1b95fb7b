"""What the viewer's requests share: pool, settings, session codec, login limiter, templates."""
from __future__ import annotations

from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from config.server import ServerSettings

from .auth import LoginLimiter, SessionCodec


@dataclass
class ViewerContext:
    pool: AsyncConnectionPool
    settings: ServerSettings
    codec: SessionCodec
    limiter: LoginLimiter
    env: object  # jinja2.Environment
    menu_cache: dict = field(default_factory=dict)  # tenant -> (monotonic time, filter menu values)
    review_flags: tuple[str, ...] = ()  # flags a review may carry (built in + FLUSSO_REVIEW_LABELS)
    scrubber: object = None  # store.reviews.Scrubber: the PII detectors applied to review notes

    @property
    def cookie_secure(self) -> bool:
        return self.settings.flusso_cookie_secure
