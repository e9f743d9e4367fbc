"""A user's requests counted where the token is checked (in the same round trip in
Redis), against the in-memory twin; tests/integration/test_users_store.py runs the
same tests against Redis."""

from __future__ import annotations

import pytest

from tests.unit.test_users import FakeClock
from trainq.errors import NotAuthenticated, RateLimited
from trainq.store.rates import MemoryBuckets, Rate
from trainq.users.memory import MemoryUsers
from trainq.users.protocols import UserStore

SLOW = Rate(per_s=0.01, burst=3)  # three at once, then one per 100 s


@pytest.fixture
def users() -> UserStore:
    return MemoryUsers(clock=FakeClock())


def test_a_burst_passes_then_the_token_is_refused_saying_when_to_retry(users: UserStore) -> None:
    token = users.add("alice")[1].secret
    for _ in range(3):
        assert users.authenticate(token, SLOW).name == "alice"
    with pytest.raises(RateLimited, match="per second per token, bursts of 3") as refused:
        users.authenticate(token, SLOW)
    assert 90 <= refused.value.retry_after_s <= 100
    assert token not in str(refused.value)
    assert users.authenticate(token).name == "alice"  # no rate: not counted


def test_each_token_has_its_own_bucket(users: UserStore) -> None:
    first = users.add("alice")[1].secret
    second = users.issue("alice").secret
    for _ in range(3):
        users.authenticate(first, SLOW)
    with pytest.raises(RateLimited):
        users.authenticate(first, SLOW)
    assert users.authenticate(second, SLOW).name == "alice"


def test_a_wrong_secret_never_drains_the_tokens_bucket(users: UserStore) -> None:
    token = users.add("alice")[1].secret
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(10):
        with pytest.raises(NotAuthenticated):
            users.authenticate(forged, SLOW)
    for _ in range(3):
        assert users.authenticate(token, SLOW).name == "alice"


def test_memory_buckets_let_one_through_per_interval_after_the_burst() -> None:
    buckets, rate = MemoryBuckets(), Rate(per_s=2, burst=2)
    assert [buckets.take("b", rate, 10.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert buckets.take("b", rate, 10.5) == 0.0
    assert buckets.take("b", rate, 10.5) == 0.5
