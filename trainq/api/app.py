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
from trainq.api.auth import TokenCheck
from trainq.api.limits import BodyLimit
from trainq.api.routes import artifacts, cluster, jobs
from trainq.config import Settings, get_settings
from trainq.errors import (
    AlreadyFinished,
    ApiRefused,
    ArtifactError,
    JobNotFound,
    SpecError,
    StoreUnavailable,
)

DESCRIPTION = """
Submit training jobs, follow them and cancel them. Jobs run in containers on
trainq's Celery workers.

Every endpoint but `/health` needs `Authorization: Bearer <token>`, a token from
the server's `TRAINQ_API_TOKENS`.
"""


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# When a client should try again while Redis is away.
RETRY_AFTER_S = 5


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app; refuses to build without a token unless ``dev_mode`` is set."""
    settings = settings or get_settings()
    tokens = settings.api_token_list
    if not tokens and not settings.dev_mode:
        raise ApiRefused(
            "no API token: set TRAINQ_API_TOKENS=<token>[,<token>...], or "
            "TRAINQ_DEV_MODE=1 to run an open API on a development machine"
        )
    check = TokenCheck(tokens)
    app = FastAPI(
        title="trainq",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=[
            {"name": "jobs", "description": "Training jobs"},
            {"name": "artifacts", "description": "Checkpoints, outputs and logs of a job"},
            {"name": "cluster", "description": "Workers, queues and figures"},
        ],
    )
    app.include_router(jobs.router(check, settings))
    app.include_router(artifacts.router(check, settings))
    app.include_router(cluster.router(check, settings))
    for outage in connections.OUTAGE_ERRORS:
        app.add_exception_handler(outage, _unavailable(settings))
    app.add_exception_handler(StoreUnavailable, _status(503))
    app.add_exception_handler(ArtifactError, _status(502))
    app.add_exception_handler(JobNotFound, _status(404))
    app.add_exception_handler(AlreadyFinished, _status(409))
    app.add_exception_handler(SpecError, _spec_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
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
