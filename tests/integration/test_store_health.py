"""/health names a worker that cannot reach the artifact store (real Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.harness import STORE_TEST_URL
from trainq.cluster.figures import ClusterView
from trainq.cluster.registry import Registry
from trainq.config import Settings
from trainq.store.keys import Keys
from trainq.store.redis import RedisJobRecords
from trainq.worker import startup

PROBLEM = "artifact store s3://bucket/x does not answer: connection refused"


@pytest.fixture
def client(redis_server: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(STORE_TEST_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_health_names_the_worker_that_cannot_reach_the_store(client: redis.Redis) -> None:
    settings = Settings(hostname="box1", key_prefix="health-test:")
    keys = Keys(settings.key_prefix)
    registry = Registry(client, keys, ttl_s=30)
    plan = startup.plan(
        settings, name="w@box1", gpus=None, concurrency=1, loglevel="INFO",
        runtime="process", store_error=PROBLEM,
    )  # fmt: skip
    registry.beat(plan.info)
    view = ClusterView(RedisJobRecords(client, keys), registry, settings)

    checks = view.health(client)

    assert checks["artifact_store"] == f"w@box1: {PROBLEM}"
    assert checks["redis"] == "ok" and checks["workers"] == "ok"
    registry.beat(plan.info.model_copy(update={"store_error": None, "queues": ("cpu",)}))
    assert view.health(client)["artifact_store"] == "ok"
