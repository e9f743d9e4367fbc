"""The admission loop under faults, with real workers: its leader killed, an admission
that crashes between sending and recording, a message lost after its admission. In
every case no job is lost and none runs twice (adopt-or-launch).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pytest

from tests.clusters import HOST, PROBE, Cluster, owner
from tests.harness import STATE_DIR, wait_until
from trainq import connections
from trainq.celery_app import TASK_NAME, create_app
from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings
from trainq.jobs.failures import FailureClass
from trainq.jobs.record import JobRecord
from trainq.jobs.routing import worker_queues
from trainq.jobs.status import JobStatus
from trainq.scheduler.admission import Admission

pytestmark = pytest.mark.faults


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


def registered(cluster: Cluster) -> str:
    """The name of a GPU 0 worker, registered as the scheduler will see it before it
    runs (no admission loop yet)."""
    name = cluster.worker_name(0)
    queues = tuple(worker_queues([0], cluster.settings))
    info = WorkerInfo(name=name, hostname=HOST, queues=queues, gpu_ids=(0,),
                      simulated_gpus=True, runtime="process", concurrency=1)  # fmt: skip
    connections.registry(cluster.settings).beat(info)
    return name


def test_an_admission_that_crashes_between_sending_and_recording_never_runs_a_job_twice(
    cluster: Cluster,
) -> None:
    settings = cluster.settings
    name = registered(cluster)
    runs = cluster.folder / "runs"
    once = [sys.executable, "-c",
            "import sys; open(sys.argv[1], 'a').write('ran\\n'); print('{\"trainq\": \"result\"}')",
            str(runs)]  # fmt: skip
    job = cluster.submit(owner("frank"), once, gpu_ids=[0])
    client = connections.client(settings)
    queue_key = f"{settings.key_prefix}{cluster.get(job).queue}"
    send = Sender(settings)

    class CrashingOnce(Admission):
        crashed = False

        def mark(self, job_id: str) -> None:
            if not self.crashed:
                self.crashed = True
                raise RuntimeError("the admission died after sending")
            super().mark(job_id)

    admission = admission_of(settings, cluster, send, CrashingOnce)
    try:
        with pytest.raises(RuntimeError, match="died after sending"):
            admission.run_pass()
        assert send.sent == [job] and cluster.get(job).pending  # sent, not recorded
        assert [c.job_id for c in admission.run_pass().admit] == [job]  # so sent again
    finally:
        send.close()
    assert send.sent == [job, job] and client.llen(queue_key) == 2
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


def test_a_job_whose_message_was_lost_after_its_admission_is_sent_again(
    cluster: Cluster,
) -> None:
    settings = cluster.settings.model_copy(update={"worker_ttl_s": 1.0})  # stale after 2 s
    name = registered(cluster)
    job = cluster.submit(owner("gina"), PROBE, gpu_ids=[0])
    client = connections.client(settings)
    queue_key = f"{settings.key_prefix}{cluster.get(job).queue}"
    send = Sender(settings)
    try:
        lost = admission_of(settings, cluster, lambda record: None)  # the broker lost it
        assert [c.job_id for c in lost.run_pass().admit] == [job]
        first = cluster.get(job)
        assert not first.pending and client.llen(queue_key) == 0
        again = admission_of(settings, cluster, send)
        assert again.run_pass().admit == [] and send.sent == []  # not stale yet: holds its slot
        wait_until(lambda: again.run_pass() is not None and send.sent, 30,
                   "the job to be sent again", interval_s=0.5)  # fmt: skip
    finally:
        send.close()
    assert send.sent == [job] and client.llen(queue_key) == 1
    resent = cluster.get(job)
    assert resent.admissions == 1 and (resent.admitted_at or 0) > (first.admitted_at or 0)

    cluster.start(0, name=name)
    (record,) = cluster.succeeded([job])
    assert len(record.attempts) == 1


class Sender:
    """Sends "supervise job J" to a cluster's broker, as the workers' admission does,
    and remembers what it sent."""

    def __init__(self, settings: Settings) -> None:
        self._app = create_app(settings)
        self.sent: list[str] = []

    def __call__(self, record: JobRecord) -> None:
        payload = record.spec.model_dump(mode="json")
        self._app.send_task(TASK_NAME, kwargs=payload, task_id=record.id, queue=record.queue)
        self.sent.append(record.id)

    def close(self) -> None:
        self._app.close()


def admission_of(
    settings: Settings,
    cluster: Cluster,
    send: Callable[[JobRecord], None],
    kind: type[Admission] = Admission,
) -> Admission:
    """An admission of ``cluster`` run from the test, not by a worker."""
    return kind(
        connections.scheduler_state(settings), cluster.records,
        connections.coordination(settings), send, settings,
        client=connections.client(settings), keys=connections.keys(settings), name="test",
    )  # fmt: skip


def worker_said(job_id: str, text: str) -> int:
    """How many lines of this run's worker logs about ``job_id`` contain ``text``."""
    return sum(
        1
        for log in (STATE_DIR / "logs").glob("TrainingWorker_*.log")
        for line in log.read_text().splitlines()
        if job_id in line and text in line
    )
