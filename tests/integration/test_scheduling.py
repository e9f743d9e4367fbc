"""The fair scheduler with real workers (issue 15's acceptance): admission order by fair
share and priority, quotas, preemption, a lost admission leader, a crashed admission.

Each test runs its own cluster (a key prefix of its own: its jobs, broker queues,
registry and admission lease), with simulated GPU workers, so no other module's
workers or jobs take part. Jobs are submitted by direct clients (trusted) as several
owners; the order jobs started in is each record's first attempt's start.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import PREFIX, REPO, STATE_DIR, Worker, wait_until
from trainq import connections
from trainq.celery_app import TASK_NAME, create_app
from trainq.client import submit, waiting_reason
from trainq.client.jobs import cancel
from trainq.client.scheduling import set_policy
from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings, get_settings
from trainq.errors import AlreadyFinished
from trainq.jobs.failures import FailureClass
from trainq.jobs.record import JobRecord
from trainq.jobs.routing import worker_queues
from trainq.jobs.status import JobStatus
from trainq.logs.format import decode
from trainq.scheduler.admission import Admission
from trainq.scheduler.policy import OwnerPolicy

pytestmark = pytest.mark.integration

HOST = get_settings().hostname
# A short job that succeeds.
PROBE = [sys.executable, "-c", 'import time; time.sleep(0.2); print(\'{"trainq": "result"}\')']
# Runs until the file named by its argument exists (or 120 s pass), then succeeds.
GATED = (
    "import os, sys, time\n"
    "deadline = time.time() + 120\n"
    "while not os.path.exists(sys.argv[1]) and time.time() < deadline:\n"
    "    time.sleep(0.05)\n"
    'print(\'{"trainq": "result"}\')\n'
)


def owner(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Cluster:
    """One test's cluster: its own key prefix, its simulated GPU workers, its jobs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.settings = Settings(key_prefix=f"{PREFIX[:-1]}-sched-{uuid.uuid4().hex[:8]}:")
        self.records = connections.records(self.settings)
        self.gate = folder / "gate"  # gated jobs end once it exists
        self.gated = [sys.executable, "-c", GATED, str(self.gate)]
        self.workers: list[Worker] = []
        self.jobs: list[str] = []

    def worker_name(self, gpu: int) -> str:
        return f"gpu{gpu}-{os.getpid()}-{time.monotonic_ns()}@testhost"

    def start(self, gpu: int, env: dict[str, str] | None = None, name: str = "") -> Worker:
        """A worker owning simulated GPU ``gpu`` (one job at a time), in this cluster."""
        name = name or self.worker_name(gpu)
        cluster_env = {"TRAINQ_KEY_PREFIX": self.settings.key_prefix, "TRAINQ_SIMULATE_GPUS": "1"}
        worker = Worker(
            name,
            self.folder / f"{name.split('@')[0]}.log",
            {**cluster_env, **(env or {})},
            args=["--gpus", str(gpu)],
        )
        self.workers.append(worker)
        worker.start()
        return worker

    def submit(self, who: str, command: list[str], **spec: Any) -> str:
        values = {"gpu": True, "command": command, **spec}
        job_id = submit(values, settings=self.settings, owner=who)
        self.jobs.append(job_id)
        return job_id

    def get(self, job_id: str) -> JobRecord:
        return self.records.get(job_id)

    def succeeded(self, job_ids: list[str], timeout_s: float = 90) -> list[JobRecord]:
        """The jobs' records once all are final; each must have succeeded."""

        def done() -> list[JobRecord]:
            found = [self.get(i) for i in job_ids]
            return found if all(r.status.is_terminal for r in found) else []

        records = wait_until(done, timeout_s, f"{len(job_ids)} jobs to end", interval_s=0.2)
        for r in records:
            assert r.status == JobStatus.SUCCEEDED, (r.id, r.status, r.error)
        return records

    def running(self, job_id: str) -> JobRecord | None:
        r = self.get(job_id)
        return r if r.status == JobStatus.RUNNING and r.attempts[-1].started_at else None

    def close(self) -> None:
        self.gate.touch()
        for job_id in self.jobs:  # nothing of this test goes on running
            with contextlib.suppress(AlreadyFinished):
                cancel(job_id, revoke=lambda _: None, records=self.records,
                       coordination=connections.coordination(self.settings))  # fmt: skip
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def cluster(redis_server: str, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        made.close()


def start_of(record: JobRecord) -> float:
    started = record.attempts[0].started_at
    assert started is not None, record.id
    return started


def in_start_order(records: list[JobRecord]) -> list[str]:
    return [r.id for r in sorted(records, key=start_of)]


def test_a_second_owner_is_not_stuck_behind_the_first_owners_backlog(cluster: Cluster) -> None:
    cluster.start(0)
    alice, bob = owner("alice"), owner("bob")
    # Alice's first job holds the worker until both backlogs are in.
    alices = [cluster.submit(alice, cluster.gated)]
    alices += [cluster.submit(alice, PROBE) for _ in range(9)]
    bobs = [cluster.submit(bob, PROBE) for _ in range(10)]
    cluster.gate.touch()

    records = {r.id: r for r in cluster.succeeded(alices + bobs)}

    assert start_of(records[bobs[0]]) < start_of(records[alices[2]])
    for mine in (alices, bobs):  # each owner's own jobs keep their order
        assert in_start_order([records[i] for i in mine]) == mine


def test_a_high_priority_job_starts_next_ahead_of_older_normal_ones(cluster: Cluster) -> None:
    cluster.start(0)
    carol = owner("carol")
    blocker = cluster.submit(carol, cluster.gated)
    wait_until(lambda: cluster.running(blocker), 60, "the first job to run")
    normals = [cluster.submit(carol, PROBE) for _ in range(5)]
    urgent = cluster.submit(carol, PROBE, priority="high")
    assert all(cluster.get(i).pending for i in [*normals, urgent])
    cluster.gate.touch()

    records = cluster.succeeded([blocker, *normals, urgent])

    assert in_start_order(records) == [blocker, urgent, *normals]


def test_an_owner_at_their_gpu_quota_waits_and_another_owner_takes_the_free_gpu(
    cluster: Cluster,
) -> None:
    workers = [cluster.start(0), cluster.start(1)]
    alice, bob = owner("alice"), owner("bob")
    set_policy(alice, OwnerPolicy(gpus=1), settings=cluster.settings)
    first, second = cluster.submit(alice, cluster.gated), cluster.submit(alice, cluster.gated)
    bobs = cluster.submit(bob, cluster.gated)
    wait_until(lambda: cluster.running(first) and cluster.running(bobs), 60, "two jobs to run")

    waiting = cluster.get(second)
    assert waiting.pending
    reason = waiting_reason(waiting, cluster.settings) or ""
    assert f"{alice} is at their GPU quota 1/1" in reason
    on = {cluster.get(i).attempts[0].worker for i in (first, bobs)}
    assert on == {w.name for w in workers}  # one job on each worker
    cluster.gate.touch()

    a1, a2, _ = cluster.succeeded([first, second, bobs])
    assert a1.attempts[0].ended_at is not None
    assert start_of(a2) >= a1.attempts[0].ended_at  # never two of hers at once


def test_a_low_priority_job_yields_to_a_high_one_and_resumes_from_its_checkpoint(
    cluster: Cluster,
) -> None:
    cluster.start(0, {"TRAINQ_PREEMPT_AFTER_S": "0", "TRAINQ_PREEMPT_MIN_RUN_S": "1"})
    epochs = 8
    slow_train = [sys.executable, str(REPO / "train.py"), "--epoch-sleep-s", "1"]
    low = cluster.submit(owner("alice"), slow_train, epochs=epochs, priority="low", max_retries=0)
    # By epoch 2 it has run over a second (an epoch's sleep): it may be made to yield.
    wait_until(lambda: (cluster.get(low).progress.epoch or 0) >= 2, 90, "epoch 2 of the job")
    high = cluster.submit(owner("bob"), PROBE, priority="high")

    low_done, high_done = cluster.succeeded([low, high])

    first, second = low_done.attempts  # the yield is no failure: max_retries=0 sufficed
    assert first.failure_class == FailureClass.PREEMPTED
    assert second.failure_class is None
    assert low_done.preemptions == 1
    assert low_done.counted_attempts == 1
    assert first.ended_at is not None and second.started_at is not None
    assert first.ended_at <= start_of(high_done) <= second.started_at
    assert (low_done.result or {})["epochs"] == epochs
    said = lines_by_attempt(Path(low_done.log_path or ""))
    stops = [
        m
        for line in said[1]
        if (m := re.fullmatch(r"stopped by signal, checkpoint at epoch (\d+)", line))
    ]
    assert len(stops) == 1, said[1][-20:]
    reached = int(stops[0].group(1))
    assert 2 <= reached < epochs  # it yielded after the epoch 2 it had reached
    assert f"resuming from epoch {reached}" in said[2]  # and went on from there


def lines_by_attempt(log: Path) -> dict[int, list[str]]:
    """The job's own output lines in its log file, by attempt."""
    said: dict[int, list[str]] = {}
    for text in log.read_text().splitlines():
        line = decode(text)
        if line is not None and line.event is None:
            said.setdefault(line.attempt, []).append(line.msg)
    return said


def leader(cluster: Cluster) -> str | None:
    """The name of the worker holding the admission lease ("<token>:<name>")."""
    client = connections.client(cluster.settings)
    held = client.get(connections.keys(cluster.settings).scheduler_leader)
    return str(held).split(":", 1)[1] if held else None


def test_a_killed_admission_leader_is_replaced_within_its_lease_and_no_job_is_lost_or_doubled(
    cluster: Cluster,
) -> None:
    ttl_s = 3.0
    env = {"TRAINQ_SCHEDULER_LEASE_TTL_S": str(ttl_s)}
    workers = {w.name: w for w in (cluster.start(0, env), cluster.start(1, env))}
    dave = owner("dave")
    held = [cluster.submit(dave, cluster.gated) for _ in range(2)]  # one on each worker
    wait_until(lambda: all(cluster.running(i) for i in held), 60, "a job on each worker")
    queued = [cluster.submit(dave, PROBE) for _ in range(2)]  # pending: no worker is free
    holder = leader(cluster)
    assert holder in workers

    workers[holder].kill()
    killed_at = time.time()
    after = [cluster.submit(owner("erin"), PROBE) for _ in range(3)]
    successor = wait_until(lambda: leader(cluster) not in (None, holder) and leader(cluster),
                           30, "another worker to lead")  # fmt: skip
    took_over_s = time.time() - killed_at
    cluster.gate.touch()

    assert successor in workers
    # The lease ends within its TTL of the last renewal, and a follower looks every TTL/5
    # (plus 2.5 s for a loaded machine).
    assert took_over_s < ttl_s * 1.2 + 2.5
    records = {r.id: r for r in cluster.succeeded(held + queued + after)}
    for r in records.values():
        assert r.admissions == 1, (r.id, r.admissions)  # sent once by admission
    for job_id in queued + after:  # sent by the new leader, run once
        r = records[job_id]
        assert r.admitted_at is not None and r.admitted_at > killed_at
        assert [a.worker for a in r.attempts] == [successor]
    (lost_job,) = [i for i in held if records[i].attempts[0].worker == holder]
    (kept_job,) = set(held) - {lost_job}
    assert [a.worker for a in records[kept_job].attempts] == [successor]
    # The killed worker's job was sent again by the reconciler (no admission) and ran
    # to its end on the survivor.
    lost, rerun = records[lost_job].attempts
    assert lost.failure_class == FailureClass.TRANSIENT and "worker lost" in (lost.error or "")
    assert rerun.worker == successor and rerun.failure_class is None


def test_an_admission_that_crashes_between_sending_and_recording_never_runs_a_job_twice(
    cluster: Cluster,
) -> None:
    settings = cluster.settings
    name = cluster.worker_name(0)
    queues = tuple(worker_queues([0], settings))
    # The worker as the scheduler will see it, before it runs: no admission loop yet.
    info = WorkerInfo(name=name, hostname=HOST, queues=queues, gpu_ids=(0,),
                      simulated_gpus=True, runtime="process", concurrency=1)  # fmt: skip
    connections.registry(settings).beat(info)
    runs = cluster.folder / "runs"
    once = [sys.executable, "-c",
            "import sys; open(sys.argv[1], 'a').write('ran\\n'); print('{\"trainq\": \"result\"}')",
            str(runs)]  # fmt: skip
    job = cluster.submit(owner("frank"), once, gpu_ids=[0])
    client = connections.client(settings)
    queue_key = f"{settings.key_prefix}{cluster.get(job).queue}"
    app = create_app(settings)
    sent: list[str] = []

    def send(record: JobRecord) -> None:
        payload = record.spec.model_dump(mode="json")
        app.send_task(TASK_NAME, kwargs=payload, task_id=record.id, queue=record.queue)
        sent.append(record.id)

    class CrashingOnce(Admission):
        crashed = False

        def mark(self, job_id: str) -> None:
            if not self.crashed:
                self.crashed = True
                raise RuntimeError("the admission died after sending")
            super().mark(job_id)

    admission = CrashingOnce(
        connections.scheduler_state(settings), cluster.records,
        connections.coordination(settings), send, settings,
        client=client, keys=connections.keys(settings), name="test",
    )  # fmt: skip
    try:
        with pytest.raises(RuntimeError, match="died after sending"):
            admission.run_pass()
        assert sent == [job] and cluster.get(job).pending  # sent, not recorded
        assert [c.job_id for c in admission.run_pass().admit] == [job]  # so sent again
    finally:
        app.close()
    assert sent == [job, job] and client.llen(queue_key) == 2
    marked = cluster.get(job)
    assert not marked.pending and marked.admissions == 1

    cluster.start(0, name=name)
    cluster.succeeded([job])
    handled = f"Task {TASK_NAME}[{job}] succeeded"  # the second: nothing left to do
    wait_until(lambda: worker_said(job, handled) == 2, 60, "both messages handled", interval_s=0.5)

    record = cluster.get(job)
    assert record.status == JobStatus.SUCCEEDED
    assert len(record.attempts) == 1
    assert worker_said(job, "launched attempt") == 1
    assert runs.read_text().splitlines() == ["ran"]  # one process, though sent twice


def worker_said(job_id: str, text: str) -> int:
    """How many lines of this run's worker logs about ``job_id`` contain ``text``."""
    return sum(
        1
        for log in (STATE_DIR / "logs").glob("TrainingWorker_*.log")
        for line in log.read_text().splitlines()
        if job_id in line and text in line
    )
