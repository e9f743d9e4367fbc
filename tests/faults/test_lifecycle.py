"""Faults injected into real services: kills, duplicates, cancels, preemptions.

Real Redis, real prefork workers as subprocesses on the Docker runtime, the real
Docker engine. Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery.result import AsyncResult

from tests.harness import BIN, PREFIX, REDIS_URL, REPO, Worker, trainq_containers, wait_until
from trainq import JobStatus, app, cancel, connections, submit_training
from trainq.config import get_settings
from trainq.jobs.record import JobRecord
from trainq.logs.components import COMPONENT_FILES
from trainq.store.keys import Keys
from trainq.store.pending import group_of
from trainq.worker.task import requeue

pytestmark = pytest.mark.faults

Workers = Callable[[str], Worker]
# Lines of the chatty job whose supervisor is killed mid-output.
LINES = 3000


def slow_train(seconds_per_epoch: float) -> list[str]:
    return ["python3", "/app/train.py", "--epoch-sleep-s", str(seconds_per_epoch)]


def record(job_id: str) -> JobRecord:
    return connections.records().get(job_id)


def reached_epoch(job_id: str, epoch: int) -> bool:
    r = record(job_id)
    return r.status == JobStatus.RUNNING and (r.progress.epoch or 0) >= epoch


def dropped(job_id: str) -> list[str]:
    """What this run's workers said when they dropped a delivery of ``job_id``."""
    said = []
    for log in get_settings().log_dir.glob(f"{COMPONENT_FILES['worker']}_*.log"):
        for line in log.read_text().splitlines():
            # A line being written may be read in part: the next look sees it whole.
            if line.endswith("}") and job_id in line and " dropped " in line:
                entry = json.loads(line)
                if entry["job_id"] == job_id:
                    said.append(str(entry["msg"]))
    return said


class ContainerWatch:
    """Every container id seen for a job, and the most seen at one moment."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.seen: set[str] = set()
        self.most_at_once = 0

    def look(self) -> list[str]:
        now = trainq_containers(self.job_id)
        self.seen.update(now)
        self.most_at_once = max(self.most_at_once, len(now))
        return now


def test_a_cancelled_queued_job_never_starts(docker_workers: Workers) -> None:
    r = submit_training.delay(epochs=1)  # no worker runs yet: it is pending

    cancelled = subprocess.run(
        [str(BIN / "trainq"), "cancel", r.id, "--json"], capture_output=True, text=True, cwd=REPO
    )
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    # Submitted after it, so admitted after it would have been: once this one is done,
    # the scheduler has passed the cancelled job by.
    later = submit_training.delay(epochs=1)

    docker_workers("cancel-queued@testhost")
    watch = ContainerWatch(r.id)

    def later_finished() -> bool:
        watch.look()
        return record(later.id).status.is_terminal

    wait_until(later_finished, 90, "the job submitted after the cancelled one to finish")
    assert record(later.id).status == JobStatus.SUCCEEDED
    job = record(r.id)
    assert (job.status, job.attempts, job.admissions) == (JobStatus.CANCELLED, [], 0)
    assert AsyncResult(r.id, app=app).state == "PENDING"  # never sent, so never consumed
    assert watch.seen == set()

    again = subprocess.run([str(BIN / "trainq"), "cancel", r.id], capture_output=True, text=True)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_cancelling_a_running_job_stops_its_container_first(docker_workers: Workers) -> None:
    docker_workers("cancel-running@testhost")
    r = submit_training.delay(epochs=50, command=slow_train(0.5))
    wait_until(lambda: reached_epoch(r.id, 1), 90, "the job to train an epoch")
    (container,) = trainq_containers(r.id)

    started = time.monotonic()
    cancelled = subprocess.run(
        [str(BIN / "trainq"), "cancel", r.id, "--json"], capture_output=True, text=True, cwd=REPO
    )
    took_s = time.monotonic() - started

    assert cancelled.returncode == 0, cancelled.stderr
    final = json.loads(cancelled.stdout)
    assert final["status"] == "cancelled"
    assert trainq_containers(r.id) == []  # gone before the record said cancelled
    assert took_s < 2 + 5  # grace (TRAINQ_STOP_GRACE_S=2) + 5 s
    assert [a["handle"] for a in final["attempts"]] == [container]
    wait_until(lambda: AsyncResult(r.id, app=app).ready(), 30, "the task to end")
    assert record(r.id).model_dump(mode="json")["attempts"] == final["attempts"]
    assert record(r.id).status == JobStatus.CANCELLED


def test_worker_sigkill_mid_training_is_adopted_by_the_next_worker(
    docker_workers: Workers,
) -> None:
    first = docker_workers("doomed@testhost")
    r = submit_training.delay(epochs=6, command=slow_train(1.0))
    watch = ContainerWatch(r.id)
    wait_until(lambda: watch.look() and reached_epoch(r.id, 3), 120, "epoch 3 of 6")
    (container,) = watch.look()

    first.kill()
    killed_at = time.monotonic()
    assert watch.look() == [container]  # the container outlives its supervisor
    docker_workers("rescuer@testhost")

    def succeeded() -> bool:
        watch.look()
        return record(r.id).status == JobStatus.SUCCEEDED

    wait_until(succeeded, 90, "the job to succeed under the new worker", interval_s=0.2)
    assert time.monotonic() - killed_at < 60 + 10  # picked up in seconds, not hours
    job = record(r.id)
    assert watch.seen == {container} and watch.most_at_once == 1
    assert [(a.number, a.handle) for a in job.attempts] == [(1, container)]
    assert job.attempts[0].exit_code == 0
    # One process trained every epoch once: the history has each epoch once.
    assert [m["epoch"] for m in job.result["metrics"]] == [1, 2, 3, 4, 5, 6]  # type: ignore[index]


def test_after_a_reattach_every_line_is_stored_exactly_once_in_order(
    docker_workers: Workers,
) -> None:
    """A worker killed while a chatty job prints: its successor re-attaches to the
    container and goes on after what was stored, in the stream and in the job's file."""
    printer = (
        "import time\n"
        f"for i in range({LINES}):\n"
        "    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.004)\n"
    )
    first = docker_workers("chatty-doomed@testhost")
    r = submit_training.delay(command=["python3", "-c", printer])
    stream = connections.log_stream()

    def stored() -> int:
        return sum(1 for _ in stream.read(r.id))

    wait_until(lambda: stored() >= LINES // 4, 120, f"{LINES // 4} lines stored")
    first.kill()
    assert record(r.id).status == JobStatus.RUNNING
    docker_workers("chatty-rescuer@testhost")

    wait_until(lambda: record(r.id).status.is_terminal, 120, "the job to end")
    job = record(r.id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert [a.number for a in job.attempts] == [1]  # re-attached, never relaunched
    expected = [f"line {i}" for i in range(LINES)]
    shown = subprocess.run(
        [str(BIN / "trainq"), "logs", r.id],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
    )  # fmt: skip
    assert shown.stdout.splitlines() == expected
    entries = [json.loads(line) for line in Path(job.log_path or "").read_text().splitlines()]
    assert [e["msg"] for e in entries if "event" not in e] == expected
    events = [e["event"] for e in entries if "event" in e]
    assert events == ["attempt_started", "attempt_adopted", "attempt_ended"]


def test_a_duplicate_delivery_yields_one_container_and_one_result(
    docker_workers: Workers,
) -> None:
    docker_workers("first@testhost")
    docker_workers("second@testhost")
    r = submit_training.delay(epochs=4, command=slow_train(0.7))
    watch = ContainerWatch(r.id)
    wait_until(lambda: watch.look() and reached_epoch(r.id, 1), 90, "the job to run")

    (attempt,) = record(r.id).attempts
    holder = attempt.worker
    (other,) = {"first@testhost", "second@testhost"} - {holder}

    requeue(record(r.id))  # the same message again, while the first still runs

    # Received, and dropped by the idle worker because the busy one holds the lease.
    wait_until(lambda: dropped(r.id), 60, f"{other} to drop the duplicate")

    def succeeded() -> bool:
        watch.look()
        return record(r.id).status == JobStatus.SUCCEEDED

    wait_until(succeeded, 120, "the job to succeed", interval_s=0.2)
    result = r.get(timeout=30)
    assert result == record(r.id).result
    assert len(watch.seen) == 1 and watch.most_at_once == 1
    assert [a.worker for a in record(r.id).attempts] == [holder]
    (said,) = dropped(r.id)  # once, by the other worker, naming the lease's holder
    expected = f"{other} dropped this delivery of the job: job {r.id} is supervised by N:{holder}"
    assert re.fullmatch(re.escape(expected).replace("N", r"\d+"), said), said


def test_a_preempted_attempt_is_retried_and_resumes_from_its_checkpoint(
    docker_workers: Workers,
) -> None:
    docker_workers("preempt@testhost")
    r = submit_training.delay(epochs=5, command=slow_train(1.0), max_retries=2)
    wait_until(lambda: reached_epoch(r.id, 2), 120, "epoch 2 of 5")
    (container,) = trainq_containers(r.id)

    subprocess.run(["docker", "kill", "--signal", "TERM", container], check=True,
                   capture_output=True)  # fmt: skip

    result = r.get(timeout=120)
    job = record(r.id)
    assert job.status == JobStatus.SUCCEEDED
    assert [(a.exit_code, a.failure_class) for a in job.attempts] == [(75, "transient"), (0, None)]
    assert job.error is None
    said = [json.loads(line)["msg"] for line in Path(job.log_path or "").read_text().splitlines()]
    (resume,) = [msg for msg in said if msg.startswith("resuming from epoch ")]
    resumed_at = int(resume.split()[-1])
    assert resumed_at >= 2
    assert [m["epoch"] for m in result["metrics"]] == [1, 2, 3, 4, 5]


def test_a_python_exception_fails_at_once_with_its_traceback(docker_workers: Workers) -> None:
    docker_workers("bug@testhost")
    script = "def load():\n    raise ValueError('batch_size must divide the data')\nload()\n"
    r = submit_training.delay(command=["python3", "-c", script], max_retries=3)

    with pytest.raises(Exception, match="batch_size must divide"):
        r.get(timeout=90)
    job = record(r.id)
    assert job.status == JobStatus.FAILED
    assert [a.failure_class for a in job.attempts] == ["permanent"]
    assert "Traceback (most recent call last)" in (job.error or "")
    assert "ValueError: batch_size must divide the data" in (job.error or "")


def test_idempotency_key_returns_the_first_job(redis_server: str) -> None:
    records = connections.records()
    before = records.count()
    first = submit_training.apply_async(kwargs={"epochs": 1, "idempotency_key": "nightly-42"},
                                        queue="trainq-test-idle")  # fmt: skip
    again = subprocess.run(
        [str(BIN / "trainq"), "submit", "--idempotency-key", "nightly-42", "--json"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["id"] == first.id
    # The second recorded nothing: one record, alone in its pending group (nobody serves
    # the queue, so the scheduler sends nothing either).
    assert records.count() == before + 1
    group = group_of(record(first.id))
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    assert group is not None and client.zrange(Keys(PREFIX).pending(group), 0, -1) == [first.id]
    assert client.llen(f"{PREFIX}trainq-test-idle") == 0
    cancel(first.id)
