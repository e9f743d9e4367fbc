"""Faults in what trainq stands on: a Redis restart, containers left without a job."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import BIN, PREFIX, REPO, Worker, trainq_containers, wait_until
from trainq.connections import RIDE_OUT, Target, redis_client
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.base import Launch
from trainq.runtime.factory import make_runtime
from trainq.store.keys import Keys
from trainq.store.redis import RedisJobRecords
from trainq.testing import RedisServer

pytestmark = pytest.mark.faults

Workers = Callable[[str], Worker]


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", aof=True).start()
    yield server
    server.stop()


def test_a_job_survives_a_redis_restart_mid_training(
    aof_redis: RedisServer, docker_engine: str, tmp_path: Path
) -> None:
    env = {"TRAINQ_REDIS_URL": aof_redis.url, "TRAINQ_RUNTIME": "docker"}
    worker = Worker("aof@testhost", tmp_path / "worker.log", env)
    worker.start()
    # A reader that, like a worker, rides out the restart.
    store = RedisJobRecords(redis_client(Target(aof_redis.url), RIDE_OUT), Keys(PREFIX))
    try:
        submitted = subprocess.run(
            [str(BIN / "trainq"), "submit", "--epochs", "6", "--json", "--",
             "python3", "/app/train.py", "--epoch-sleep-s", "1"],
            capture_output=True, text=True, cwd=REPO, env=worker.env, check=True,
        )  # fmt: skip
        job_id = JobRecord.model_validate_json(submitted.stdout).id

        def epoch(n: int) -> bool:
            return (store.get(job_id).progress.epoch or 0) >= n

        wait_until(lambda: epoch(2), 120, "epoch 2 before the restart")
        spec_before = store.get(job_id).spec
        aof_redis.restart()

        wait_until(lambda: store.get(job_id).status.is_terminal, 120, "the job to end")
        job = store.get(job_id)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert job.spec == spec_before
        assert len(job.attempts) == 1
        assert [m["epoch"] for m in (job.result or {})["metrics"]] == [1, 2, 3, 4, 5, 6]
        # The worker reconnected: it answers, and runs a new job.
        after = subprocess.run(
            [str(BIN / "trainq"), "submit", "--epochs", "1", "--wait", "--json"],
            capture_output=True, text=True, cwd=REPO, env=worker.env, timeout=120,
        )  # fmt: skip
        assert after.returncode == 0, after.stderr
    finally:
        worker.stop()


def test_the_reconciler_removes_containers_of_finished_and_unknown_jobs(
    docker_workers: Workers, docker_engine: str, tmp_path: Path
) -> None:
    from trainq import connections
    from trainq.config import get_settings

    settings = get_settings().model_copy(update={"runtime": "docker"})
    runtime = make_runtime(settings)
    store = connections.records()
    finished = JobRecord(id="rc-finished", spec=JobSpec()).moved_to(JobStatus.CANCELLED)
    store.create(finished)
    sleeper = ["python3", "-c", "import time; time.sleep(300)"]
    for job_id in ("rc-finished", "rc-unknown"):
        runtime.start(
            Launch(
                job_id=job_id,
                attempt=1,
                image=docker_engine,
                command=sleeper,
                env={},
                checkpoint_dir=tmp_path / job_id,
                worker="gone@host",
            )
        )
    assert len(trainq_containers("rc-finished")) == len(trainq_containers("rc-unknown")) == 1

    docker_workers("reconciler@testhost")

    wait_until(lambda: not trainq_containers(), 60, "the reconciler to remove both containers")
    assert store.get("rc-finished").status == JobStatus.CANCELLED
