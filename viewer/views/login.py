"""Sign in and sign out."""
from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from collector_api.store.accounts.principals import end_sessions, find_user, upgrade_password_hash

from ..auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, VerifierBusy, csrf_matches, needs_rehash
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal, SessionPrincipal
from ..errors import BadRequest, TooManyAttempts
from ..render import render
from ..routing import PageRoute

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute)


def safe_next(target: str | None) -> str:
    """Only a local path: never `//host` or a scheme, so the login cannot redirect off-site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: Request, ctx: ViewerContext, *, next_path: str, error: str | None = None,
                status: int = 200, email: str = "") -> Response:
    cookie, token = ctx.codec.new_login_token()
    response = render(request, "login.html", {"next": next_path, "error": error, "login_csrf": token,
                                              "email": email}, status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, cookie, max_age=3600, httponly=True, samesite="lax",
                        secure=ctx.cookie_secure(request), path="/login")
    return response


@router.get("/login")
async def get_login(request: Request, ctx: Context, signed_in: SessionPrincipal, next: str | None = None) -> Response:
    if signed_in is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(request, ctx, next_path=safe_next(next))


@router.post("/login")
async def post_login(request: Request, ctx: Context, email: Annotated[str, Form(max_length=320)] = "",
                     password: Annotated[str, Form(max_length=1024)] = "",
                     csrf_token: Annotated[str, Form(max_length=200)] = "",
                     next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    next_path = safe_next(next)
    if not ctx.codec.check_login_token(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(request, ctx, next_path=next_path, status=400,
                           error="The form expired or came from elsewhere; please sign in again.")
    ip = request.client.host if request.client else "?"
    email = email.strip().lower()
    # A hard limit per client address only: one per email would let anyone lock a user out.
    if not ctx.limiter.allow(f"ip:{ip}"):
        logger.warning("login rate limit hit for ip=%s email=%s", ip, email)
        return _login_page(request, ctx, next_path=next_path, status=TooManyAttempts.status, email=email,
                           error="Too many sign-in attempts; wait a minute and try again.")
    await asyncio.sleep(ctx.failures.delay_s(email))  # grows with the account's recent failures
    user = await find_user(ctx.pool, email) if email else None
    try:
        ok = await ctx.verifier.verify(user.password_hash if user else None, password)
    except VerifierBusy:
        busy = _login_page(request, ctx, next_path=next_path, status=503, email=email,
                           error="Too many sign-ins at once; try again in a few seconds.")
        busy.headers["Retry-After"] = str(ctx.verifier.retry_after_s)
        return busy
    if not ok:
        ctx.failures.failed(email)
        return _login_page(request, ctx, next_path=next_path, status=401, email=email,
                           error="Unknown email or wrong password.")
    ctx.failures.succeeded(email)
    if needs_rehash(user.password_hash):
        await upgrade_password_hash(ctx.pool, user.id, user.password_hash,
                                    await ctx.verifier.rehash(password))
    cookie, _ = ctx.codec.new_session(user.id, user.session_epoch)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=ctx.codec.max_age_s, httponly=True, samesite="lax",
                        secure=ctx.cookie_secure(request), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    logger.info("user %s signed in", user.email)
    return response


@router.post("/logout")
async def post_logout(request: Request, ctx: Context, principal: CurrentPrincipal,
                      csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    if not csrf_matches(principal.csrf, csrf_token):
        raise BadRequest("the sign-out form expired; reload the page and try again")
    await end_sessions(ctx.pool, principal.user_id)  # a copied cookie dies with this one
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=ctx.cookie_secure(request))
    return response
