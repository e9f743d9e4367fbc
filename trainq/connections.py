"""Every connection trainq makes to Redis, built from Settings in this one place.

The store's parts (records, coordination, idempotency keys), the job log streams
and the worker registry share one client (one connection pool) per Redis URL in a
process. How long a command keeps trying while Redis does not answer depends on
who asks:

- **interactive** callers (CLI, API, a Python script: the default) give up within
  seconds and say what is down (:class:`~trainq.errors.Unavailable`, naming the URL);
- **workers** ride out an outage of about a minute (a Redis restart), so a running
  job's supervisor never gives up on it: :mod:`trainq.worker.task`, which every
  worker imports at start, calls :func:`ride_out_outages` before anything connects.

Each process builds one client and one set of stores per Redis, key prefix and
patience, however often callers ask for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import kombu.exceptions
import redis

from trainq.artifacts.store import ArtifactStore
from trainq.audit.trail import AuditTrail
from trainq.cluster.registry import Registry, WorkerInfo
from trainq.config import Settings, get_settings
from trainq.errors import Unavailable
from trainq.logs.series import RedisMetricSeries
from trainq.logs.stream import RedisLogStream
from trainq.scheduler.policy import Policies
from trainq.scheduler.state import SchedulerState
from trainq.store.clients import (
    INTERACTIVE,
    PROBE,
    RIDE_OUT,
    Patience,
    Target,
    redis_client,
    shown_url,
)
from trainq.store.keys import Keys
from trainq.store.redis import RedisCoordination, RedisIdempotencyKeys, RedisJobRecords
from trainq.users.sessions import RedisSessions
from trainq.users.store import RedisUsers

__all__ = [  # besides what is defined here: how clients are built
    "INTERACTIVE", "PROBE", "RIDE_OUT", "Patience", "Target", "redis_client", "shown_url"
]  # fmt: skip

# What a Redis (or broker) outage looks like to a caller.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    kombu.exceptions.OperationalError,
)

_patience = [INTERACTIVE]


def ride_out_outages() -> None:
    """Make this process (a worker) keep trying through a Redis outage of about a minute."""
    _patience[0] = RIDE_OUT


def client(settings: Settings | None = None) -> redis.Redis:
    settings = settings or get_settings()
    return redis_client(Target.of(settings), _patience[0])


def probe(settings: Settings | None = None) -> redis.Redis:
    """A client that gives up at once: is Redis there now?"""
    settings = settings or get_settings()
    return redis_client(Target.of(settings), PROBE)


def keys(settings: Settings | None = None) -> Keys:
    return Keys((settings or get_settings()).key_prefix)


def records(settings: Settings | None = None) -> RedisJobRecords:
    settings = settings or get_settings()
    return _store(*_where(settings), settings.fairshare_half_life_h * 3600).records


def coordination(settings: Settings | None = None) -> RedisCoordination:
    settings = settings or get_settings()
    return _store(*_where(settings), settings.fairshare_half_life_h * 3600).coordination


def idempotency_keys(settings: Settings | None = None) -> RedisIdempotencyKeys:
    settings = settings or get_settings()
    return _store(*_where(settings), settings.fairshare_half_life_h * 3600).idempotency_keys


def log_stream(settings: Settings | None = None) -> RedisLogStream:
    """The job log streams."""
    settings = settings or get_settings()
    retention_s = settings.log_retention_days * 86_400
    return _log_stream(*_where(settings), settings.log_stream_max_lines, retention_s)


def metric_series(settings: Settings | None = None) -> RedisMetricSeries:
    """The jobs' metric series (their progress lines' numbers), kept as long as their logs."""
    settings = settings or get_settings()
    retention_s = settings.log_retention_days * 86_400
    return _metric_series(*_where(settings), settings.metric_series_max_points, retention_s)


def registry(settings: Settings | None = None) -> Registry:
    """The live-worker registry of the settings' cluster."""
    settings = settings or get_settings()
    return _registry(*_where(settings), settings.worker_ttl_s)


def scheduler_state(settings: Settings | None = None) -> SchedulerState:
    """What the scheduler reads: pending groups, slot holders, owners' policies and usage."""
    settings = settings or get_settings()
    return SchedulerState(client(settings), keys(settings), registry(settings), settings)


def policies(settings: Settings | None = None) -> Policies:
    """The owners' scheduling policies (quotas, highest priority, weight)."""
    return Policies(client(settings), keys(settings))


def users(settings: Settings | None = None) -> RedisUsers:
    """The users and their tokens."""
    return _users(*_where(settings))


def sessions(settings: Settings | None = None) -> RedisSessions:
    """The web page's login sessions."""
    settings = settings or get_settings()
    return _sessions(*_where(settings), settings.ui_session_ttl_s)


def audit_trail(settings: Settings | None = None) -> AuditTrail:
    """The audit trail: the day's file under the log directory and the capped stream."""
    settings = settings or get_settings()
    return _audit_trail(*_where(settings), settings.log_dir, settings.audit_stream_max_entries)


def _where(settings: Settings | None) -> tuple[Target, str, Patience]:
    """Which Redis, under which key prefix, with this process's patience."""
    settings = settings or get_settings()
    return Target.of(settings), settings.key_prefix, _patience[0]


@dataclass(frozen=True)
class _Store:
    records: RedisJobRecords
    coordination: RedisCoordination
    idempotency_keys: RedisIdempotencyKeys


# Built once per Redis, prefix and patience: callers ask for them on every request.
@cache
def _store(target: Target, prefix: str, patience: Patience, half_life_s: float) -> _Store:
    client, keys = redis_client(target, patience), Keys(prefix)
    return _Store(
        RedisJobRecords(client, keys, half_life_s),
        RedisCoordination(client, keys),
        RedisIdempotencyKeys(client, keys),
    )


@cache
def _log_stream(
    target: Target, prefix: str, patience: Patience, max_lines: int, retention_s: float
) -> RedisLogStream:
    return RedisLogStream(redis_client(target, patience), Keys(prefix), max_lines, retention_s)


@cache
def _metric_series(
    target: Target, prefix: str, patience: Patience, max_points: int, retention_s: float
) -> RedisMetricSeries:
    return RedisMetricSeries(redis_client(target, patience), Keys(prefix), max_points, retention_s)


@cache
def _registry(target: Target, prefix: str, patience: Patience, ttl_s: float) -> Registry:
    return Registry(redis_client(target, patience), Keys(prefix), ttl_s)


@cache
def _users(target: Target, prefix: str, patience: Patience) -> RedisUsers:
    return RedisUsers(redis_client(target, patience), Keys(prefix))


@cache
def _sessions(target: Target, prefix: str, patience: Patience, ttl_s: float) -> RedisSessions:
    return RedisSessions(redis_client(target, patience), Keys(prefix), ttl_s)


@cache
def _audit_trail(
    target: Target, prefix: str, patience: Patience, log_dir: Path, max_entries: int
) -> AuditTrail:
    return AuditTrail(redis_client(target, patience), Keys(prefix), log_dir, max_entries)


def artifact_store(settings: Settings | None = None) -> ArtifactStore:
    """The artifact store of the settings: one per artifact URL (and credentials)."""
    settings = settings or get_settings()
    where = (
        settings.artifact_location,
        settings.artifact_s3_endpoint_url,
        settings.artifact_s3_region,
        settings.artifact_s3_access_key_id.get_secret_value(),
        settings.artifact_s3_secret_access_key.get_secret_value(),
        settings.artifact_timeout_s,
    )
    if where not in _artifact_stores:
        _artifact_stores[where] = ArtifactStore.from_settings(settings)
    return _artifact_stores[where]


# Built once per store: callers ask for it on every request (Settings is unhashable).
_artifact_stores: dict[tuple[str, str, str, str, str, float], ArtifactStore] = {}


def live_workers(settings: Settings | None = None) -> list[WorkerInfo]:
    """Every live worker of the settings' cluster."""
    return registry(settings).live()


def unavailable(exc: Exception, settings: Settings | None = None) -> Unavailable:
    """What to tell a person when Redis (``exc``) does not answer: the URL and why."""
    settings = settings or get_settings()
    target = Target.of(settings)
    if target.sentinels:
        return Unavailable(
            f"Redis: no primary answers for {target.shown()} ({exc}); trainq's broker "
            "and job store are down, or a failover is under way: try again in a few "
            "seconds, or check the sentinels (TRAINQ_REDIS_SENTINELS)"
        )
    return Unavailable(
        f"Redis at {target.shown()} does not answer ({exc}); "
        "trainq's broker and job store are down or unreachable: start Redis, or set "
        "TRAINQ_REDIS_URL"
    )
