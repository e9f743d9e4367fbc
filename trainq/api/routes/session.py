"""The web page's login, logout and session (``/ui/login``, ``/ui/logout``, ``/ui/session``).

Logging in exchanges a token (a user's, or one of ``TRAINQ_API_TOKENS``) for a session
cookie: ``trainq_session``, ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, ``Max-Age``
the session's TTL, ``Secure`` when the request came over https (its scheme, or
``X-Forwarded-Proto: https`` from a TLS-terminating proxy). The forms post
``application/x-www-form-urlencoded`` bodies, read here (no multipart parser needed);
they are left out of the OpenAPI schema, which describes the JSON API.
"""

from __future__ import annotations

import re
from typing import cast
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from trainq.api.auth import (
    CROSS_SITE,
    CSRF_HEADER,
    Authenticate,
    Caller,
    csrf_matches,
    over_https,
    own_origin,
    same_origin,
    unauthorized,
)
from trainq.api.models import UNAUTHORIZED, SessionView
from trainq.config import Settings
from trainq.errors import NotAuthenticated
from trainq.users.sessions import SESSION_COOKIE, Session

LOGIN_PAGE = "/ui/login"
HOME_PAGE = "/ui/"
# Where a login may send the browser next: a page of /ui on this server, nothing else
# (no other host, no scheme, no "//" nor "\\" a browser reads as one, no "..").
_NEXT = re.compile(r"/ui(?:[/?#][A-Za-z0-9\-._~!$&'()*+,;=:@%/?#]*)?")
_MAX_FORM_FIELDS = 10


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/ui", tags=["ui"])

    @api.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        """Exchange the form's ``token`` for a session; 303 to ``next`` (or /ui/), or
        back to the form with ``?error=1``."""
        if _foreign(request):
            return JSONResponse({"detail": f"{CROSS_SITE}: its Origin is not this API's"}, 403)
        form = await _form(request)
        goto = safe_next(form.get("next"))
        authenticate = _authenticate(request)
        token = form.get("token", "").strip()  # as pasted, perhaps with a newline
        try:
            # Counted against the rate limit by the middleware, as any tokenless request.
            principal = await run_in_threadpool(authenticate.token_principal, token)
        except NotAuthenticated:
            again = LOGIN_PAGE + "?error=1"
            if goto != HOME_PAGE:
                again += "&next=" + quote(goto, safe="")
            return RedirectResponse(again, status_code=303)
        sessions = authenticate.sessions()
        old = request.cookies.get(SESSION_COOKIE)
        if old:  # never two sessions in one browser: the old one ends
            await run_in_threadpool(sessions.delete, old)
        secret, _ = await run_in_threadpool(sessions.create, principal)
        request.state.principal = principal  # the audit trail's actor
        answer = RedirectResponse(goto, status_code=303)
        answer.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=max(1, int(sessions.ttl_s)),
            path="/",
            secure=over_https(request),
            httponly=True,
            samesite="strict",
        )
        return answer

    @api.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        """End the session (the form's ``csrf`` or the header must be its CSRF token);
        303 to the login form, the cookie cleared."""
        if _foreign(request):
            return JSONResponse({"detail": f"{CROSS_SITE}: its Origin is not this API's"}, 403)
        authenticate = _authenticate(request)
        sessions = authenticate.sessions()
        cookie = request.cookies.get(SESSION_COOKIE)
        session: Session | None = await run_in_threadpool(sessions.get, cookie)
        if session is not None:
            form = await _form(request)
            sent = form.get("csrf") or request.headers.get(CSRF_HEADER)
            request.state.principal = session.principal()
            if not csrf_matches(sent, session.csrf):
                detail = f"{CROSS_SITE}: the CSRF token is missing or wrong"
                return JSONResponse({"detail": detail}, 403)
            await run_in_threadpool(sessions.delete, cookie)
        answer = RedirectResponse(LOGIN_PAGE, status_code=303)
        answer.delete_cookie(
            SESSION_COOKIE, path="/", secure=over_https(request), httponly=True, samesite="strict"
        )
        return answer

    @api.get(
        "/session",
        response_model=SessionView,
        responses=UNAUTHORIZED,
        summary="The web page's session: its user and CSRF token",
    )
    def current_session(request: Request, response: Response, _: Caller) -> SessionView:
        session: Session | None = request.state.session
        if session is None:  # a bearer token, or dev mode: no session to describe
            raise unauthorized("no session: log in at /ui/login")
        response.headers["Cache-Control"] = "no-store"
        return SessionView(
            user=session.user, admin=session.admin, csrf=session.csrf, expires_at=session.expires_at
        )

    return api


def safe_next(wanted: str | None) -> str:
    """``wanted`` if it is a page of /ui on this server, else /ui/."""
    if not wanted or _NEXT.fullmatch(wanted) is None or "//" in wanted or ".." in wanted:
        return HOME_PAGE
    return wanted


def _foreign(request: Request) -> bool:
    """Whether the request says it comes from another origin (a cross-site form)."""
    origin = request.headers.get("origin")
    return origin is not None and not same_origin(origin, own_origin(request))


def _authenticate(request: Request) -> Authenticate:
    return cast(Authenticate, request.app.state.authenticate)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form's fields (the first value of each; none for another body)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=_MAX_FORM_FIELDS)
    except ValueError:  # more fields than a form of ours has
        return {}
    return {name: values[0] for name, values in fields.items()}
