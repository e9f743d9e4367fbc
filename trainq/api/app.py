"""The FastAPI application: routes, auth, error shapes and the body size limit.

Every error is JSON: ``422`` in FastAPI's validation shape (``detail`` lists each
bad field with its ``loc``), every other ``4xx`` as ``{"detail": "..."}``. A
:class:`~trainq.errors.SpecError` from submit (the allow-list, a limit above the
cluster's cap) is a ``422`` naming its field like any other bad body. While Redis
does not answer, every route answers ``503`` with ``Retry-After`` within seconds,
naming the Redis URL (the API's Redis clients give up quickly:
:mod:`trainq.connections`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from trainq import connections
from trainq.api.auditing import AuditMiddleware
from trainq.api.auth import Authenticate
from trainq.api.limits import BodyLimit
from trainq.api.ratelimit import RateLimit
from trainq.api.routes import (
    artifacts,
    audit,
    cluster,
    events,
    jobs,
    logs,
    metrics,
    scheduling,
    session,
    users,
)
from trainq.audit.writer import AuditWriter
from trainq.config import Settings, get_settings
from trainq.errors import (
    AlreadyFinished,
    ArtifactError,
    Forbidden,
    JobNotFound,
    NotPending,
    QuotaExceeded,
    SpecError,
    Unavailable,
    UserExists,
    UserNotFound,
)
from trainq.ui import routes as ui_routes

DESCRIPTION = """
Submit training jobs, follow them and cancel them. Jobs run in containers on
trainq's Celery workers.

Every endpoint but `/health` needs `Authorization: Bearer <token>`: a user's token
(`trainq users add NAME` prints one) or one of the server's `TRAINQ_API_TOKENS`
(admins). Any user may submit and read jobs and the pending queue; only a job's owner
or an admin may cancel it, change its priority or download its artifacts; only admins
manage users and their quotas, and read the audit trail.

The web page at `/ui` logs in with such a token and then calls these endpoints with its
session cookie instead; its POST, PATCH and DELETE calls also send the session's
`X-CSRF-Token` (from `GET /ui/session`).
"""


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# When a client should try again while Redis is away.
RETRY_AFTER_S = 5


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app. Every call but ``/health`` needs a token unless ``dev_mode`` is set."""
    settings = settings or get_settings()
    authenticate = Authenticate(settings)
    app = FastAPI(
        title="trainq",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "jobs", "description": "Training jobs"},
            {"name": "artifacts", "description": "Checkpoints, outputs and logs of a job"},
            {"name": "cluster", "description": "Workers, queues and figures"},
            {"name": "users", "description": "Users and their tokens (admins)"},
            {"name": "audit", "description": "Who changed what (admins)"},
            {"name": "ui", "description": "The web page's session (its pages are at /ui)"},
        ],
    )
    app.state.authenticate = authenticate  # what trainq.api.auth.Caller asks
    app.include_router(jobs.router(settings))
    app.include_router(scheduling.router(settings))
    app.include_router(logs.router(settings))
    app.include_router(metrics.router(settings))
    app.state.feeds = events.feeds(settings)
    app.include_router(events.router(settings, app.state.feeds))
    app.include_router(artifacts.router(settings))
    app.include_router(cluster.router(settings))
    app.include_router(users.router(settings))
    app.include_router(audit.router(settings))
    app.include_router(session.router(settings))
    # The web page's pages and static files, reading the sessions Authenticate reads.
    app.include_router(ui_routes.router(settings, authenticate.sessions))
    for outage in connections.OUTAGE_ERRORS:
        app.add_exception_handler(outage, _unavailable(settings))
    app.add_exception_handler(Unavailable, _status(503))  # NotAccepted, StoreUnavailable
    app.add_exception_handler(ArtifactError, _status(502))
    app.add_exception_handler(JobNotFound, _status(404))
    app.add_exception_handler(AlreadyFinished, _status(409))
    app.add_exception_handler(NotPending, _status(409))
    app.add_exception_handler(Forbidden, _status(403))
    app.add_exception_handler(UserNotFound, _status(404))
    app.add_exception_handler(UserExists, _status(409))
    app.add_exception_handler(QuotaExceeded, _status(429))
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.state.audit_writer = AuditWriter(lambda: connections.audit_trail(settings))
    app.add_middleware(AuditMiddleware, settings=settings, writer=app.state.audit_writer)
    # Outermost: a refused request costs one Redis call and is not audited.
    app.add_middleware(RateLimit, settings=settings)
    return app


def _status(code: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle


def _unavailable(settings: Settings) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        detail = str(connections.unavailable(exc, settings))
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)

    return handle


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's answer, except that a ``405`` lists every method the path has."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        routes = request.app.router.routes
        allowed = [
            method
            for method in _METHODS
            if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
        ]
        exc = StarletteHTTPException(405, exc.detail, headers={"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)


async def _spec_error(_: Request, exc: Exception) -> JSONResponse:
    message = str(exc)
    return JSONResponse(
        {"detail": [{"loc": ["body"], "msg": message, "type": "spec_error"}]}, status_code=422
    )
