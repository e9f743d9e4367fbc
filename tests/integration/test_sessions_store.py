"""The sessions' and the metric series' contracts (tests/unit/test_sessions.py,
tests/unit/test_metric_series.py) against Redis, and what only Redis can show: no
secret in any key or value, sessions and series that expire by themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis

from tests.harness import wait_until
from tests.unit import test_metric_series as series_contract
from tests.unit import test_sessions as sessions_contract
from tests.unit.test_users import FakeClock
from trainq.logs.series import MetricSeries, RedisMetricSeries
from trainq.store.keys import Keys
from trainq.users.protocols import UserStore
from trainq.users.sessions import RedisSessions, Sessions, digest
from trainq.users.store import RedisUsers

pytestmark = pytest.mark.integration

# Every store contract test, collected here again with this module's fixtures.
for module, fixture in ((sessions_contract, "sessions"), (series_contract, "series")):
    globals().update(
        {
            n: getattr(module, n)
            for n in dir(module)
            if n.startswith("test_") and fixture in getattr(module, n).__code__.co_varnames
        }
    )

RETENTION_S = 60


@pytest.fixture
def prefix() -> str:
    return f"test-sessions-{uuid.uuid4().hex}:"


@pytest.fixture
def client(redis_server: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server, decode_responses=True)
    yield client
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def users(client: redis.Redis, prefix: str, clock: FakeClock) -> UserStore:
    return RedisUsers(client, Keys(prefix), clock=clock)


@pytest.fixture
def sessions(client: redis.Redis, prefix: str, clock: FakeClock) -> Sessions:
    return RedisSessions(client, Keys(prefix), sessions_contract.TTL_S, clock=clock)


@pytest.fixture
def series(client: redis.Redis, prefix: str) -> MetricSeries:
    return RedisMetricSeries(client, Keys(prefix), series_contract.CAP, RETENTION_S)


def test_redis_holds_a_sessions_digest_never_its_secret_and_expires_it(
    users: UserStore, sessions: Sessions, client: redis.Redis, prefix: str
) -> None:
    _, issued = users.add("alice")
    cookie, made = sessions.create(users.authenticate(issued.secret))

    key = f"{prefix}session:{digest(cookie)}"
    session_keys = list(client.scan_iter(match=f"{prefix}session:*"))
    assert session_keys == [key]
    stored = client.get(key)
    assert stored is not None and cookie not in stored and made.csrf in stored
    assert issued.secret not in stored
    ttl_ms = client.pttl(key)
    assert sessions_contract.TTL_S * 1000 - 5000 < ttl_ms <= sessions_contract.TTL_S * 1000


def test_redis_forgets_a_session_when_its_ttl_runs_out(
    users: UserStore, client: redis.Redis, prefix: str
) -> None:
    short = RedisSessions(client, Keys(prefix), ttl_s=0.3)  # the real clock: Redis decides
    _, issued = users.add("alice")
    cookie, _ = short.create(users.authenticate(issued.secret))
    assert short.get(cookie) is not None

    wait_until(lambda: short.get(cookie) is None, 10, "the session to expire")

    assert not list(client.scan_iter(match=f"{prefix}session:*"))


def test_a_series_expires_with_its_retention_renewed_by_each_point(
    series: MetricSeries, client: redis.Redis, prefix: str
) -> None:
    key = Keys(prefix).metric_series("job")
    series.append("job", {"epoch": 1, "attempt": 1, "ts": 1})
    client.expire(key, 5)

    series.append("job", {"epoch": 2, "attempt": 1, "ts": 2})

    assert RETENTION_S - 5 < client.ttl(key) <= RETENTION_S
    (entry,) = cast(list[tuple[str, dict[str, str]]], client.xrange(key, count=1))
    assert entry[1] == {"p": '{"epoch":1,"attempt":1,"ts":1}'}  # compact JSON, field p
