"""Submit against a real primary and replica (Redis WAIT): accepted while the replica
confirms, refused and taken back once it is gone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainq import client
from trainq.config import Settings
from trainq.connections import INTERACTIVE, Target, redis_client
from trainq.errors import NotAccepted
from trainq.store.keys import Keys
from trainq.store.redis import RedisJobRecords
from trainq.testing import RedisServer, SentinelCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    cluster = SentinelCluster(tmp_path / "ha", sentinels=0)  # no failover here
    primary, replica = cluster.servers
    primary.start()
    replica.start()
    cluster.wait_until_replica(replica)
    yield primary, replica
    cluster.stop()


def test_a_submit_is_accepted_once_the_replica_holds_it_and_refused_without_one(
    primary_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    primary, replica = primary_and_replica
    settings = Settings(redis_url=primary.url, redis_min_replicas=1, redis_wait_s=0.3)
    records = RedisJobRecords(redis_client(Target(primary.url), INTERACTIVE), Keys("wait:"))

    job_id = client.submit({"name": "kept"}, records=records, settings=settings)

    on_replica = RedisJobRecords(redis_client(Target(replica.url), INTERACTIVE), Keys("wait:"))
    assert on_replica.get(job_id).spec.name == "kept"  # WAIT returned: it is there

    replica.stop()
    started = time.monotonic()
    with pytest.raises(NotAccepted, match=r"0 of the 1 Redis replicas .* within 0.3 s"):
        client.submit({"name": "refused"}, records=records, settings=settings)
    assert time.monotonic() - started < 5
    assert [r.spec.name for r in records.list().records] == ["kept"]
    assert records.count() == 1
