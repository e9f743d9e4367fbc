"""A worker that cannot reach the artifact store starts on standby: no queue, and the
store's error in its registry entry (tests/integration/test_store_health.py: /health)."""

from __future__ import annotations

from trainq.config import Settings
from trainq.worker import startup
from trainq.worker.standby import STANDBY_QUEUE

PROBLEM = "artifact store s3://bucket/x does not answer: connection refused"


def test_a_worker_without_its_store_consumes_only_the_standby_queue() -> None:
    settings = Settings(hostname="box1")

    plan = startup.plan(
        settings, name="w@box1", gpus=None, concurrency=1, loglevel="INFO",
        runtime="process", store_error=PROBLEM,
    )  # fmt: skip

    assert f"--queues={STANDBY_QUEUE}" in plan.celery_argv
    assert plan.info.queues == () and plan.info.store_error == PROBLEM
    assert plan.deferred == ("cpu", "cpu@box1")


def test_a_worker_with_its_store_consumes_its_queues_at_once() -> None:
    plan = startup.plan(
        Settings(hostname="box1"), name="w@box1", gpus=None, concurrency=1,
        loglevel="INFO", runtime="process",
    )  # fmt: skip

    assert "--queues=cpu,cpu@box1" in plan.celery_argv
    assert plan.info.queues == ("cpu", "cpu@box1") and plan.deferred == ()
