"""Request dependencies: the viewer's context and who is asking. Views take them as parameters
(`ctx: Context`, `principal: CurrentPrincipal` / `ApiPrincipal`) and contain no auth code."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from collector_api.store.accounts import find_api_key, get_user
from collector_api.store.credentials import MAX_KEY_LENGTH, presented_api_key

from .auth import SESSION_COOKIE, Principal
from .context import ViewerContext
from .errors import LoginRequired


def get_context(request: Request) -> ViewerContext:
    return request.app.state.viewer


Context = Annotated[ViewerContext, Depends(get_context)]


async def session_principal(request: Request) -> Principal | None:
    """The signed-in user of the session cookie, or None (no cookie, expired, signed out, deleted)."""
    ctx = get_context(request)
    data = ctx.codec.read_session(request.cookies.get(SESSION_COOKIE))
    if data is None:
        return None
    user = await get_user(ctx.pool, data["uid"])  # a deleted user loses access at once
    if user is None or data.get("ep", 0) != user.session_epoch:  # signed out since: void
        return None
    return Principal(role=user.role, client_id=user.client_id, email=user.email, user_id=user.id, csrf=data["csrf"])


async def page_principal(request: Request) -> Principal:
    """Dependency of HTML pages: the session's user, or LoginRequired (-> redirect to /login)."""
    principal = await session_principal(request)
    if principal is None:
        raise LoginRequired("please sign in")
    return principal


async def api_principal(request: Request) -> Principal:
    """Dependency of the JSON API: a read-scope API key (X-API-Key or Bearer), else the session."""
    secret = presented_api_key(request.headers)
    if secret:
        ctx = get_context(request)
        key = await find_api_key(ctx.pool, secret) if len(secret) <= MAX_KEY_LENGTH else None
        if key is None:
            raise LoginRequired("invalid or revoked API key")
        if key.scope != "read":
            raise LoginRequired(f"this API key has scope {key.scope!r}; the viewer API needs a 'read' key")
        return Principal(role="client", client_id=key.client_id, via="api_key")
    principal = await session_principal(request)
    if principal is None:
        raise LoginRequired("sign in, or send a read-scope API key in X-API-Key or Authorization: Bearer")
    return principal


SessionPrincipal = Annotated[Principal | None, Depends(session_principal)]  # pages anyone may see
CurrentPrincipal = Annotated[Principal, Depends(page_principal)]  # pages: a signed-in user
ApiPrincipal = Annotated[Principal, Depends(api_principal)]  # JSON API: a read key or a session
