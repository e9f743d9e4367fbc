"""The users' store contract (tests/unit/test_users.py) against Redis, and what only
Redis can show: no secret in any key, one user per name under concurrent adds."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.unit import test_user_rates as rates_contract
from tests.unit import test_users as contract
from tests.unit.test_users import FakeClock
from trainq.errors import UserExists
from trainq.store.keys import Keys
from trainq.users.protocols import UserStore
from trainq.users.store import RedisUsers

pytestmark = pytest.mark.integration

# Every store contract test, collected here again with this module's `users` fixture.
for module in (contract, rates_contract):
    globals().update(
        {
            n: getattr(module, n)
            for n in dir(module)
            if n.startswith("test_") and "users" in getattr(module, n).__code__.co_varnames
        }
    )


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


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


def _stored_text(client: redis.Redis, prefix: str) -> dict[str, str]:
    """Every key under ``prefix`` and its whole value, as text."""
    found: dict[str, str] = {}
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key)
        if kind == "string":
            value: object = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = sorted(client.smembers(key))
        else:
            pytest.fail(f"unexpected {kind} key {key}")
        found[key] = repr(value)
    return found


def test_redis_holds_only_digests_never_a_secret(
    users: UserStore, client: redis.Redis, prefix: str
) -> None:
    _, first = users.add("alice", admin=True)
    second = users.issue("alice")
    users.authenticate(first.secret)
    users.revoke(second.info.id)
    users.disable("alice")

    stored = _stored_text(client, prefix)

    assert set(stored) == {
        f"{prefix}user:alice",
        f"{prefix}users",
        f"{prefix}user-tokens:alice",
        f"{prefix}token:{first.info.id}",
        f"{prefix}token:{second.info.id}",
    }
    for issued in (first, second):
        secret = issued.secret.split("_", 2)[2]
        assert all(secret not in key + value for key, value in stored.items())
    token_hash = client.hgetall(f"{prefix}token:{first.info.id}")
    assert set(token_hash) == {"user", "sha256", "created_at", "last_used_at", "revoked"}
    assert len(token_hash["sha256"]) == 64


def test_only_one_of_many_concurrent_adds_of_a_name_wins(
    redis_server: str, client: redis.Redis, prefix: str
) -> None:
    contenders = 8
    start = threading.Barrier(contenders)
    outcomes: list[str] = []

    def add() -> None:
        own = redis.Redis.from_url(redis_server, decode_responses=True)
        store = RedisUsers(own, Keys(prefix))
        start.wait(timeout=10)
        try:
            _, issued = store.add("dana")
            outcomes.append(issued.info.id)
        except UserExists:
            outcomes.append("taken")
        finally:
            own.close()

    threads = [threading.Thread(target=add) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    winners = [o for o in outcomes if o != "taken"]
    assert len(outcomes) == contenders and len(winners) == 1
    store = RedisUsers(client, Keys(prefix))
    assert [t.id for t in store.tokens("dana")] == winners
    assert [u.name for u in store.list()] == ["dana"]


class CountingRedis(redis.Redis):
    """A client that notes the name of every command it sends (one per round trip)."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]).upper())
        return super().execute_command(*args, **options)


def test_authenticate_is_one_round_trip_plus_a_write_at_most_once_a_minute(
    redis_server: str, client: redis.Redis, prefix: str, clock: FakeClock
) -> None:
    counting = CountingRedis.from_url(redis_server, decode_responses=True)
    counting.sent = []
    users = RedisUsers(counting, Keys(prefix), clock=clock)
    _, issued = users.add("alice")
    users.authenticate(issued.secret)  # the first use is written
    counting.sent.clear()

    clock.advance(30)
    for _ in range(20):
        users.authenticate(issued.secret)
    within_the_minute = list(counting.sent)
    counting.sent.clear()
    clock.advance(30)
    users.authenticate(issued.secret)

    assert within_the_minute == ["EVALSHA"] * 20
    assert counting.sent == ["EVALSHA", "HSET"]
    assert users.tokens("alice")[0].last_used_at == clock.now
    counting.close()
