"""How trainq's Redis clients are built: which Redis (a URL, or a primary found
through sentinels) and how long a command keeps trying (:class:`Patience`).
:mod:`trainq.connections` builds every client through :func:`redis_client`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from trainq.config import Settings
from trainq.config.redis_urls import sentinel_kwargs
from trainq.store.sentinel_connection import FollowingConnection


@dataclass(frozen=True)
class Patience:
    """How long a client waits for Redis before a command fails."""

    connect_timeout_s: float | None
    socket_timeout_s: float | None  # above the longest blocking read (XREAD, 1 s)
    retries: int  # attempts after the first, backing off up to 2 s apart
    retry_timeouts: bool  # retry a timeout too, not only a refused or dropped connection


# A refused or dropped connection (Redis restarted: the pool's connections are stale)
# is tried once more at once; a Redis that does not answer fails the command in 2 s.
INTERACTIVE = Patience(connect_timeout_s=1.0, socket_timeout_s=2.0, retries=1, retry_timeouts=False)
RIDE_OUT = Patience(  # about a minute
    connect_timeout_s=5.0, socket_timeout_s=None, retries=30, retry_timeouts=True
)
# One look, for /health: answers within about a second either way.
PROBE = Patience(connect_timeout_s=1.0, socket_timeout_s=1.0, retries=0, retry_timeouts=False)


@dataclass(frozen=True)
class Target:
    """Which Redis: ``url`` alone, or the primary that ``sentinels`` name (``url`` then
    gives the database, and the password when ``password`` is empty)."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = ""
    password: str = ""
    sentinel_password: str = ""

    @classmethod
    def of(cls, settings: Settings) -> Target:
        return cls(
            settings.redis_url,
            settings.sentinel_addresses,
            settings.redis_master_name,
            settings.redis_password.get_secret_value(),
            settings.redis_sentinel_password.get_secret_value(),
        )

    def shown(self) -> str:
        """Where it is, for people: the URL without its password, or the sentinels."""
        if not self.sentinels:
            return shown_url(self.url)
        listed = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"the primary of {self.master_name!r} (sentinels {listed})"


@cache
def redis_client(target: Target, patience: Patience) -> redis.Redis:
    """One client (and pool) per Redis and patience in this process. With sentinels,
    each new connection asks them for the primary, so a failover is followed the next
    time a command reconnects (and a demoted primary's ReadOnlyError makes it do so)."""
    retried: tuple[type[Exception], ...] = (redis.ConnectionError, redis.BusyLoadingError)
    if patience.retry_timeouts:
        retried += (redis.TimeoutError,)
    backoff = ExponentialBackoff(cap=2.0, base=0.1)
    retry = Retry(backoff, retries=patience.retries, supported_errors=retried)
    options: dict[str, Any] = {
        "decode_responses": True,
        "retry": retry,
        "socket_connect_timeout": patience.connect_timeout_s,
        "socket_timeout": patience.socket_timeout_s,
        "health_check_interval": 10,
    }
    if target.password:
        options["password"] = target.password
    if not target.sentinels:
        return redis.Redis.from_url(target.url, **options)
    parsed = urlsplit(target.url)
    options["db"] = int(parsed.path.strip("/") or 0)
    if not target.password and parsed.password:
        options["password"] = unquote(parsed.password)
    sentinel_options = sentinel_kwargs(target.sentinel_password)
    sentinels = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    primary = sentinels.master_for(
        target.master_name, redis_class=redis.Redis, connection_class=FollowingConnection, **options
    )  # type: ignore[no-untyped-call]
    return cast(redis.Redis, primary)


def shown_url(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
