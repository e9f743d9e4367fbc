"""The Redis log stream's newest entries, as a tail reads them."""

from __future__ import annotations

import uuid

import pytest
import redis

from tests.harness import REDIS_URL
from trainq.logs.stream import LINES_PER_ENTRY, RedisLogStream
from trainq.store.keys import Keys

pytestmark = pytest.mark.integration


def test_the_newest_entries_come_oldest_first_with_their_lines(redis_server: str) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    stream = RedisLogStream(client, Keys(f"tail-{uuid.uuid4().hex[:8]}:"), 100_000, 3600)
    stream.append("j", [(1, float(n), f"line {n}") for n in range(1_050)])

    newest = stream.last("j", 2)

    assert len(newest) == 50 + LINES_PER_ENTRY  # the last entry holds the last 50 lines
    assert [line.line for line in newest] == [f"line {n}" for n in range(900, 1_050)]
    assert [line.line for line in stream.last("j", 100)] == [f"line {n}" for n in range(1_050)]
    assert stream.last("other", 2) == []
