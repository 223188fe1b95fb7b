"""Request dependencies: the viewer's context and who is asking. Views take them as parameters
(`ctx: Context`, `principal: CurrentPrincipal` / `ApiPrincipal`) and contain no auth code."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from collector_api.http.credentials import MAX_KEY_LENGTH, presented_api_key
from collector_api.store.accounts.principals import find_api_key, get_user

from .auth import SESSION_COOKIE, Principal
from .context import ViewerContext
from .errors import Forbidden, LoginRequired


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


READ_SCOPES = ("read", "review")  # a review-scope key also reads its tenant


async def _key_principal(request: Request, secret: str) -> Principal:
    ctx = get_context(request)
    key = await find_api_key(ctx.pool, secret) if len(secret) <= MAX_KEY_LENGTH else None
    if key is None:
        raise LoginRequired("invalid or revoked API key")
    if key.scope not in READ_SCOPES:
        raise LoginRequired(f"this API key has scope {key.scope!r}; the viewer API needs a 'read' (or 'review') key")
    return Principal(role="client", client_id=key.client_id, via="api_key", key_id=key.key_id, key_scope=key.scope)


async def api_principal(request: Request) -> Principal:
    """Dependency of the JSON API: a read- or review-scope API key (X-API-Key or Bearer), else the session."""
    secret = presented_api_key(request.headers)
    if secret:
        return await _key_principal(request, secret)
    principal = await session_principal(request)
    if principal is None:
        raise LoginRequired("sign in, or send a read-scope API key in X-API-Key or Authorization: Bearer")
    return principal


async def review_key_principal(request: Request) -> Principal:
    """Dependency of the API's review POST: a review-scope API key only (a session reviews through
    the page's form, which carries a CSRF token)."""
    secret = presented_api_key(request.headers)
    if not secret:
        raise LoginRequired("send a review-scope API key in X-API-Key or Authorization: Bearer")
    principal = await _key_principal(request, secret)
    if principal.key_scope != "review":
        raise Forbidden(f"this API key has scope {principal.key_scope!r}; recording a review needs a 'review' key")
    return principal


async def key_principal(request: Request) -> Principal:
    """Dependency of API writes a read key may make (creating a dataset): a read- or review-scope
    API key only; a session uses the page's form, which carries a CSRF token."""
    secret = presented_api_key(request.headers)
    if not secret:
        raise LoginRequired("send a read-scope API key in X-API-Key or Authorization: Bearer")
    return await _key_principal(request, secret)


SessionPrincipal = Annotated[Principal | None, Depends(session_principal)]  # pages anyone may see
CurrentPrincipal = Annotated[Principal, Depends(page_principal)]  # pages: a signed-in user
ApiPrincipal = Annotated[Principal, Depends(api_principal)]  # JSON API: a read key or a session
ReviewKeyPrincipal = Annotated[Principal, Depends(review_key_principal)]  # API review POST: a review key
KeyPrincipal = Annotated[Principal, Depends(key_principal)]  # API POST of a dataset: a read or review key
