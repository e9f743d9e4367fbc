"""The core pipeline against a real Redis and real prefork workers (process runtime)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import redis
from celery.result import AsyncResult

from tests.harness import PREFIX, REDIS_URL, REPO, Worker, wait_until
from trainq import JobStatus, SpecError, app, cancel, connections, submit_training
from trainq.config import get_settings
from trainq.store.keys import Keys
from trainq.store.pending import group_of

pytestmark = pytest.mark.integration

TRAIN = str(REPO / "train.py")


def test_two_epoch_job_succeeds_through_delay(worker: Worker) -> None:
    r = submit_training.delay(epochs=2, batch_size=32, learning_rate=1e-3)

    result = r.get(timeout=120)

    assert result["final_loss"] < result["metrics"][0]["loss"]
    assert [m["epoch"] for m in result["metrics"]] == [1, 2]
    assert Path(result["checkpoint_path"]).is_file()
    record = connections.records().get(r.id)
    assert record.status == JobStatus.SUCCEEDED
    assert (record.progress.epoch, record.progress.epochs) == (2, 2)
    assert len(record.attempts) == 1
    assert record.attempts[0].exit_code == 0
    assert record.attempts[0].worker == worker.name
    entries = [json.loads(line) for line in Path(record.log_path or "").read_text().splitlines()]
    assert {e["component"] for e in entries} == {"job"}
    assert any(json.loads(e["msg"]).get("epoch") == 2 for e in entries if "{" in e["msg"])
    assert entries[-1]["event"] == "attempt_ended"
    assert entries[-1]["msg"].startswith("attempt 1 exited with code 0")


def test_failing_command_fails_with_its_output_tail(worker: Worker) -> None:
    script = "print('loading data'); raise SystemExit('boom: bad config value')"
    r = submit_training.delay(command=[sys.executable, "-c", script], max_retries=3)

    with pytest.raises(Exception, match="boom: bad config value"):
        r.get(timeout=60)

    record = connections.records().get(r.id)
    assert record.status == JobStatus.FAILED
    assert "loading data" in (record.error or "")
    assert "exited with code 1" in (record.error or "")
    # A user's bug is permanent: no retry despite max_retries=3.
    assert [a.failure_class for a in record.attempts] == ["permanent"]


def test_progress_state_is_visible_while_the_job_runs(worker: Worker) -> None:
    slow = [sys.executable, TRAIN, "--epoch-sleep-s", "1.5"]
    r = submit_training.delay(epochs=3, command=slow)

    def progress_state() -> object:
        result = AsyncResult(r.id, app=app)
        return result.state == "PROGRESS" and result.info

    info = wait_until(progress_state, 60, "the task to report PROGRESS")
    assert isinstance(info, dict) and info["epochs"] == 3 and info["epoch"] >= 1
    assert r.get(timeout=120)["final_loss"] > 0


def test_the_worker_yields_the_cpu_to_the_jobs(worker: Worker) -> None:
    """Its nice value, and its session's scheduling group's where the kernel groups by
    session (sched(7) autogroups): a job's container runs in a group of its own."""
    assert worker.proc is not None
    nice = get_settings().worker_nice
    assert nice > 0
    assert os.getpriority(os.PRIO_PROCESS, worker.proc.pid) == nice
    if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
        group = Path(f"/proc/{worker.proc.pid}/autogroup").read_text()
        assert group.split()[-2:] == ["nice", str(nice)]


def test_the_worker_runs_lean_once_its_checks_pass(worker: Worker) -> None:
    """`trainq worker` replaced itself, same process, with `python -m trainq.worker`."""
    assert worker.proc is not None
    argv = Path(f"/proc/{worker.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert argv[1:3] == [b"-m", b"trainq.worker"]
    assert f"--hostname={worker.name}".encode() in argv


def test_invalid_spec_records_and_enqueues_nothing(redis_server: str) -> None:
    """A refused spec leaves no record, no pending entry and no message; a valid one to
    the same idle queue is recorded as pending in its group (the fair scheduler sends it
    only once a worker serves that queue), so the keys looked at are the right ones."""
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    keys = Keys(PREFIX)
    queue = "trainq-test-idle"
    broker = f"{PREFIX}{queue}"
    records = connections.records()
    client.delete(broker)
    before = records.count()

    with pytest.raises(SpecError, match="epochs"):
        submit_training.apply_async(kwargs={"epochs": -1}, queue=queue)
    assert records.count() == before
    assert not any(f":{queue}:" in g for g in client.smembers(keys.pending_groups))

    job_id = submit_training.apply_async(kwargs={"epochs": 1}, queue=queue).id
    record = records.get(job_id)
    group = group_of(record)
    assert (record.pending, record.queue, group) == (True, queue, f"normal:{queue}:{record.owner}")
    assert group is not None and client.zrange(keys.pending(group), 0, -1) == [job_id]
    assert client.llen(broker) == 0  # not sent: nobody serves the queue
    cancel(job_id)
    assert client.zrange(keys.pending(group), 0, -1) == []
