"""Who is calling: every endpoint but ``/health`` (and ``/metrics`` if public) needs a
bearer token, which names a :class:`~trainq.users.model.Principal`.

A token is either one of ``TRAINQ_API_TOKENS`` (the API's first tokens: admins, named
``admin``) or a user's token from ``trainq users`` (checked against its stored hash).
In dev mode a request without a token acts as the admin ``dev``. What the principal
may then do is :mod:`trainq.users.access`'s table; :func:`job_access` applies it to a job.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import Annotated, Protocol

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

_scheme = HTTPBearer(
    auto_error=False,
    description="A user's token (trainq users add NAME), or one of TRAINQ_API_TOKENS",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_scheme)]


class Tokens(Protocol):
    def authenticate(self, token: str, rate: Rate | None = None) -> Principal:
        """The token's principal, or :class:`NotAuthenticated` saying why not; with
        ``rate``, :class:`RateLimited` for a request over it."""


class Authenticate:
    """A dependency: the principal of a request carrying a valid token (else ``401``);
    also kept in ``request.state.principal`` for the audit trail. ``users`` gives the
    user store (default: the settings' Redis)."""

    def __init__(self, settings: Settings, users: Callable[[], Tokens] | None = None) -> None:
        self._settings = settings
        self._admin_tokens = [token.encode() for token in settings.api_token_list]
        self._users = users or (lambda: connections.users(settings))
        per_s, burst = settings.api_rate_per_s, settings.api_rate_burst
        # A user's request is counted where its token is checked, in the same round trip.
        self._rate = Rate(per_s, burst) if per_s > 0 else None

    def __call__(self, request: Request, credentials: Credentials) -> Principal:
        principal = self._principal(credentials)
        request.state.principal = principal
        return principal

    def _principal(self, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        if credentials is None:
            if self._settings.dev_mode:
                return Principal(DEV_USER, admin=True)
            raise unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
        given = credentials.credentials.encode()
        # Compare with every admin token in constant time, so timing reveals none of them.
        if any([hmac.compare_digest(given, token) for token in self._admin_tokens]):
            return Principal(ENV_TOKEN_USER, admin=True)
        try:
            return self._users().authenticate(credentials.credentials, self._rate)
        except NotAuthenticated as exc:
            raise unauthorized(str(exc)) from None
        except RateLimited as exc:
            wait_s = str(max(1, math.ceil(exc.retry_after_s)))
            raise HTTPException(429, str(exc), headers={"Retry-After": wait_s}) from None


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
