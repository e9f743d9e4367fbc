"""A per-token request rate limit, shared by every API process through Redis (GCRA:
:mod:`trainq.store.rates`), one Lua call per request.

A user's token (``tq_…``) is counted by the token check itself, in the same round trip
that reads the token (:class:`~trainq.api.auth.Authenticate`), and only once its
secret matched: nobody drains another user's bucket with their token id. This
middleware counts the other requests: one with another bearer token (an admin token
from TRAINQ_API_TOKENS, or a wrong one) against the token's SHA-256 (never the token),
one without a token but with a web page session cookie against the cookie's SHA-256
(each browser its own bucket, however many share an address or a proxy), any other
against its client address. While Redis does not answer the
request goes through unlimited: the route it reaches answers ``503`` by itself.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from typing import cast

import anyio.to_thread
from redis.commands.core import Script
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from trainq import connections
from trainq.api.limits import bearer, send_problem
from trainq.config import Settings
from trainq.errors import NotAuthenticated
from trainq.store.rates import GCRA_LUA, Rate
from trainq.users import tokens
from trainq.users.protocols import over_rate
from trainq.users.sessions import SESSION_COOKIE

logger = logging.getLogger("trainq.api")

# Documentation and the health check answer everyone, whatever their rate.
EXEMPT_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})

# KEYS[1]: the bucket. ARGV[1]: the emission interval (µs), ARGV[2]: the burst.
GCRA_SCRIPT = GCRA_LUA + "return gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]))\n"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: float  # 0 when allowed


class Gcra:
    """The rate limit's buckets in Redis: ``rate_per_s`` per bucket, bursts of ``burst``."""

    def __init__(self, script: Script, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be above 0, not {rate_per_s}")
        self._script = script
        self._interval_us = max(1, round(1_000_000 / rate_per_s))
        self._burst = burst

    def take(self, bucket: str) -> Verdict:
        """Count one request against ``bucket`` (a Redis key); Redis errors raise."""
        return _verdict(self._script(keys=[bucket], args=[self._interval_us, self._burst]))


def _verdict(answer: object) -> Verdict:
    allowed, wait_us = cast(list[int], answer)
    return Verdict(bool(allowed), 0.0 if allowed else wait_us / 1_000_000)


def gcra(settings: Settings) -> Gcra:
    """The settings' rate limit, on the API's Redis client (which gives up within seconds)."""
    script = connections.client(settings).register_script(GCRA_SCRIPT)
    return Gcra(script, settings.api_rate_per_s, settings.api_rate_burst)


def bucket_key(settings: Settings, scope: Scope) -> str:
    """The request's bucket: its bearer token's hash, else its session cookie's, else
    its client address."""
    prefix = connections.keys(settings).prefix + "rate:"
    token = bearer(scope)
    if token:
        return prefix + hashlib.sha256(token.encode("latin-1")).hexdigest()[:32]
    cookie = cookie_parser(dict(scope["headers"]).get(b"cookie", b"").decode("latin-1"))
    session = cookie.get(SESSION_COOKIE)
    if session:
        return prefix + "session:" + hashlib.sha256(session.encode("latin-1")).hexdigest()[:32]
    client = scope.get("client")
    return prefix + "addr:" + (client[0] if client else "unknown")


def _user_token(scope: Scope) -> bool:
    """Whether the request carries a user's token (well formed: its check counts it)."""
    try:
        tokens.parse(bearer(scope))
    except NotAuthenticated:
        return False
    return True


class RateLimit:
    """ASGI middleware: a request over its bucket's rate gets ``429`` and ``Retry-After``.

    ``api_rate_per_s == 0`` turns it off: no Redis call at all.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._limit = gcra(settings) if settings.api_rate_per_s > 0 else None
        self._redis_failing = False  # log an outage once, not per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._limit is None or scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if _user_token(scope):  # counted where it is checked (trainq.api.auth)
            await self.app(scope, receive, send)
            return
        bucket = bucket_key(self.settings, scope)
        try:
            verdict = await anyio.to_thread.run_sync(self._limit.take, bucket)
        except connections.OUTAGE_ERRORS as exc:
            if not self._redis_failing:
                logger.warning("rate limit not applied while Redis does not answer: %s", exc)
            self._redis_failing = True
            await self.app(scope, receive, send)
            return
        if self._redis_failing:
            logger.info("rate limit applied again: Redis answers")
            self._redis_failing = False
        if verdict.allowed:
            await self.app(scope, receive, send)
        else:
            await self._refuse(send, verdict.retry_after_s)

    async def _refuse(self, send: Send, retry_after_s: float) -> None:
        rate = Rate(self.settings.api_rate_per_s, self.settings.api_rate_burst)
        wait_s = str(max(1, math.ceil(retry_after_s))).encode()
        detail = str(over_rate(rate, retry_after_s))
        await send_problem(send, 429, detail, [(b"retry-after", wait_s)])
