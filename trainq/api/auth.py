"""Who is calling: every endpoint but ``/health`` (and ``/metrics`` if public) needs a
bearer token or a web page session, which name a :class:`~trainq.users.model.Principal`.

A token is either one of ``TRAINQ_API_TOKENS`` (the API's first tokens: admins, named
``admin``) or a user's token from ``trainq users`` (checked against its stored hash).
A request without ``Authorization`` but with the ``trainq_session`` cookie acts for the
session's principal (:mod:`trainq.users.sessions`); a forged, expired or ended session is
``401``. As a browser sends the cookie whoever asks it to, an unsafe request (POST, PUT,
PATCH, DELETE) with a session must also send the session's CSRF token in ``X-CSRF-Token``
and, when it sends an ``Origin``, come from the API's own origin: else ``403``
(:func:`cross_site`). In dev mode a request with neither acts as the admin ``dev``.
What the principal may then do is :mod:`trainq.users.access`'s table; :func:`job_access`
applies it to a job.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import Annotated, Protocol
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from trainq import connections
from trainq.client.scheduling import get_policy
from trainq.config import Settings
from trainq.errors import Forbidden, JobNotFound, NotAuthenticated, RateLimited
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import Priority
from trainq.scheduler.policy import check_priority
from trainq.store.rates import Rate
from trainq.users.access import Action, decide, refusal
from trainq.users.model import DEV_USER, ENV_TOKEN_USER, Principal
from trainq.users.sessions import SESSION_COOKIE, Session, Sessions

_scheme = HTTPBearer(
    auto_error=False,
    description="A user's token (trainq users add NAME), or one of TRAINQ_API_TOKENS",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CROSS_SITE = "cross-site request refused"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Tokens(Protocol):
    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        """The token's principal, or :class:`NotAuthenticated` saying why not; with
        ``rate``, :class:`RateLimited` for a request over it."""


class Authenticate:
    """A dependency: the principal of a request carrying a valid token or session (else
    ``401``); also kept in ``request.state.principal`` for the audit trail, and the
    session in ``request.state.session``. ``users`` and ``sessions`` give the stores
    (default: the settings' Redis)."""

    def __init__(
        self,
        settings: Settings,
        users: Callable[[], Tokens] | None = None,
        sessions: Callable[[], Sessions] | None = None,
    ) -> None:
        self._settings = settings
        self._admin_tokens = [token.encode() for token in settings.api_token_list]
        self._users = users or (lambda: connections.users(settings))
        self.sessions = sessions or (lambda: connections.sessions(settings))
        per_s, burst = settings.api_rate_per_s, settings.api_rate_burst
        # A user's request is counted where its token is checked, in the same round trip.
        self._rate = Rate(per_s, burst) if per_s > 0 else None

    def __call__(self, request: Request, credentials: Credentials) -> Principal:
        cookie = request.cookies.get(SESSION_COOKIE)
        request.state.session = None
        if credentials is None and cookie:
            session = self.session(cookie)
            principal = session.principal()
            request.state.principal = principal  # a refused request is audited as theirs
            refusal = cross_site(
                request.method,
                request.headers.get("origin"),
                own_origin(request),
                request.headers.get(CSRF_HEADER),
                session.csrf,
            )
            if refusal is not None:
                raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
            request.state.session = session
            return principal
        principal = self._principal(credentials)
        request.state.principal = principal
        return principal

    def session(self, cookie: str) -> Session:
        """The live session of the cookie's value, else ``401``. One opened with a
        TRAINQ_API_TOKENS token lasts while this API has such tokens."""
        found = self.sessions().get(cookie)
        if found is not None and found.token_id is None:
            found = found if found.user == ENV_TOKEN_USER and self._admin_tokens else None
        if found is None:
            raise unauthorized("no session, or it expired or ended: log in again at /ui/login")
        return found

    def token_principal(self, token: str, rate: Rate | None = None) -> Principal:
        """The principal of ``token``; :class:`NotAuthenticated` (never quoting it), or
        with ``rate`` :class:`RateLimited`."""
        given = token.encode()
        # Compare with every admin token in constant time, so timing reveals none of them.
        if any([hmac.compare_digest(given, admin) for admin in self._admin_tokens]):
            return Principal(ENV_TOKEN_USER, admin=True)
        return self._users().authenticate(token, rate)

    def _principal(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        if credentials is None:
            if self._settings.dev_mode:
                return Principal(DEV_USER, admin=True)
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        try:
            return self.token_principal(credentials.credentials, self._rate)
        except NotAuthenticated as exc:
            raise unauthorized(str(exc)) from None
        except RateLimited as exc:
            wait_s = str(max(1, math.ceil(exc.retry_after_s)))
            raise HTTPException(429, str(exc), headers={"Retry-After": wait_s}) from None


def cross_site(
    method: str, origin: str | None, own: str, sent_csrf: str | None, session_csrf: str
) -> str | None:
    """Why a request made with a session cookie is refused as cross-site, or None.

    Safe methods pass. An unsafe one must send ``Origin`` equal to ``own`` (the API's
    origin, :func:`own_origin`) if it sends one at all, and the session's CSRF token
    (compared in constant time).
    """
    if method.upper() not in UNSAFE_METHODS:
        return None
    if origin is not None and not same_origin(origin, own):
        return f"{CROSS_SITE}: its Origin is not this API's"
    if not csrf_matches(sent_csrf, session_csrf):
        return f"{CROSS_SITE}: {CSRF_HEADER} is missing or wrong (GET /ui/session gives it)"
    return None


def csrf_matches(sent: str | None, expected: str) -> bool:
    """Whether ``sent`` is the session's CSRF token (constant time)."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def same_origin(origin: str, own: str) -> bool:
    """Whether two origins (``scheme://host[:port]``) are the same, default ports and
    case aside. ``null`` and anything unparsable is no origin's."""
    first, second = _origin_parts(origin), _origin_parts(own)
    return first is not None and first == second


def _origin_parts(origin: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def over_https(request: Request) -> bool:
    """Whether the request came over https: its scheme, or ``X-Forwarded-Proto`` (set by
    a TLS-terminating proxy). Trusted from anyone: it can only make a cookie ``Secure``
    and a browser's cross-site request cannot set it."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def own_origin(request: Request) -> str:
    """The API's origin as this request reached it: https or http, and its ``Host``."""
    scheme = "https" if over_https(request) else "http"
    host = request.headers.get("host") or request.url.netloc
    return f"{scheme}://{host}"


def current_principal(request: Request, credentials: Credentials) -> Principal:
    """The app's :class:`Authenticate` (``app.state.authenticate``) applied to the request."""
    authenticate: Authenticate = request.app.state.authenticate
    return authenticate(request, credentials)


# A route's caller: ``principal: Caller``. FastAPI runs it once per request.
Caller = Annotated[Principal, Depends(current_principal)]


def job_access(
    principal: Principal, action: Action, record: JobRecord, settings: Settings
) -> JobRecord:
    """``record`` if ``principal`` may take ``action`` on it; else ``403`` naming who may,
    or :class:`JobNotFound` (``404``) where the job is hidden from them."""
    decision = decide(principal, action, record.owner, settings.jobs_visible)
    if decision == "hidden":
        raise JobNotFound(f"no job with id {record.id!r}")
    if decision == "forbidden":
        raise HTTPException(403, refusal(principal, action, record.id, record.owner))
    return record


def require(principal: Principal, action: Action) -> None:
    """``403`` unless ``principal`` may take ``action`` (one that names no job)."""
    if decide(principal, action) != "allowed":
        raise HTTPException(403, f"{principal.name} may not {action.value}: only an admin may")


def scheduling_access(
    principal: Principal, priority: Priority | None, preemptible: bool | None, settings: Settings
) -> Priority | None:
    """For a non-admin: :class:`Forbidden` (``403``) when asking for ``preemptible``
    false, or for a ``priority`` above the highest their policy allows (else
    ``TRAINQ_DEFAULT_MAX_PRIORITY``); the highest they may use. None for an admin."""
    if principal.admin:
        return None
    if preemptible is False:
        raise Forbidden(
            f"only an admin may mark a job non-preemptible: {principal.name} is not one"
        )
    policy = get_policy(principal.name, settings)
    if priority is not None:
        check_priority(priority, policy, settings.default_max_priority, principal.name)
    return policy.highest(settings.default_max_priority)


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )
