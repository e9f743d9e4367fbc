"""The store's contracts (tests/unit/test_memory_store.py) against the Redis store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.harness import STORE_TEST_URL
from tests.unit import test_memory_store as contract
from tests.unit import test_name_filter_store as name_contract
from tests.unit import test_owner_store as owner_contract
from trainq.store.keys import Keys
from trainq.store.protocols import Coordination, IdempotencyKeys
from trainq.store.protocols import JobRecords as JobStore
from trainq.store.redis import RedisCoordination, RedisIdempotencyKeys, RedisJobRecords

pytestmark = pytest.mark.integration

# Every contract test, collected here again with this module's `store` fixture.
for module in (contract, owner_contract, name_contract):
    globals().update({n: getattr(module, n) for n in dir(module) if n.startswith("test_")})


@pytest.fixture
def client(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(STORE_TEST_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def store(client: redis.Redis) -> JobStore:
    return RedisJobRecords(client, Keys("contract:"))


@pytest.fixture
def coordination(client: redis.Redis) -> Coordination:
    return RedisCoordination(client, Keys("contract:"))


@pytest.fixture
def idempotency(client: redis.Redis) -> IdempotencyKeys:
    return RedisIdempotencyKeys(client, Keys("contract:"))


def test_records_and_indexes_live_under_the_prefix(store: JobStore) -> None:
    contract.test_create_then_get(store)
    client = redis.Redis.from_url(STORE_TEST_URL, decode_responses=True)
    keys = client.keys("*")
    assert keys and all(k.startswith("contract:") for k in keys)
    client.close()
