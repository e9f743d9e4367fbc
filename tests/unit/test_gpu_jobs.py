"""GPU jobs through the runner and the client, with in-memory store and runtime."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from trainq import client
from trainq.cluster.registry import WorkerInfo
from trainq.config import Settings
from trainq.errors import JobFailed, SpecError
from trainq.jobs.record import JobRecord
from trainq.jobs.routing import worker_queues
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.base import Exit, Launch
from trainq.runtime.memory import MemoryRuntime, Played
from trainq.store.memory import MemoryCoordination, MemoryJobRecords
from trainq.worker.devices import Gpus
from trainq.worker.runner import Runner

JOB = "job-gpu"


def ok(launch: Launch) -> Played:
    return Played(['{"trainq": "result", "final_loss": 0.1}'], Exit(0))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(log_dir=tmp_path / "logs", checkpoint_dir=tmp_path / "ck", hostname="box1")


def run(settings: Settings, owned: Gpus, **fields: Any) -> tuple[MemoryRuntime, JobRecord]:
    store = MemoryJobRecords()
    runtime = MemoryRuntime(ok)
    spec = JobSpec.parse(fields)
    store.create(JobRecord(id=JOB, spec=spec, queue="q"))
    runner = Runner(
        records=store,
        coordination=MemoryCoordination(),
        runtime=runtime,
        settings=settings,
        worker="w@box1",
        gpus=owned,
    )
    with contextlib.suppress(JobFailed):
        runner.run(JOB, spec)
    return runtime, store.get(JOB)


def test_a_count_job_runs_on_the_workers_own_devices(settings: Settings) -> None:
    runtime, record = run(settings, Gpus((2, 3), ("GPU-a", "GPU-b")), gpu=True, gpus=2)

    assert record.status == JobStatus.SUCCEEDED
    assert [launch.gpu_ids for launch in runtime.launches] == [[2, 3]]
    assert record.attempts[0].gpu_ids == [2, 3]
    assert record.attempts[0].gpu_uuids == ["GPU-a", "GPU-b"]


def test_a_pinned_job_records_its_devices(settings: Settings) -> None:
    runtime, record = run(settings, Gpus((1,)), gpu=True, gpu_ids=[1])

    assert record.status == JobStatus.SUCCEEDED
    assert runtime.launches[0].gpu_ids == [1]
    assert (record.attempts[0].gpu_ids, record.attempts[0].gpu_uuids) == ([1], [])


def test_a_cpu_job_on_a_gpu_worker_gets_no_device(settings: Settings) -> None:
    runtime, record = run(settings, Gpus((0,)))

    assert runtime.launches[0].gpu_ids == []
    assert record.attempts[0].gpu_ids == []


def test_a_gpu_job_on_a_worker_without_its_devices_fails_saying_why(settings: Settings) -> None:
    runtime, record = run(settings, Gpus((0,)), gpu=True, gpu_ids=[1], max_retries=3)

    assert runtime.launches == []  # nothing started on devices it does not own
    assert record.status == JobStatus.FAILED
    assert [a.failure_class for a in record.attempts] == ["permanent"]
    assert "needs GPUs [1] but worker w@box1 owns GPUs [0]" in (record.error or "")


def fleet(*gpu_sets: tuple[int, ...]) -> list[WorkerInfo]:
    s = Settings(hostname="box1")
    return [
        WorkerInfo(
            name=f"w{n}@box1",
            hostname="box1",
            queues=tuple(worker_queues(ids, s)),
            gpu_ids=ids,
            runtime="process",
            concurrency=1,
        )
        for n, ids in enumerate(gpu_sets)
    ]


@pytest.mark.parametrize(
    ("scheduler", "sends"),
    [("fifo", True), ("fair", False)],  # fair: pending, the admission loop sends it
)
def test_submit_records_the_routed_queue_and_sends_only_with_fifo(
    settings: Settings, scheduler: str, sends: bool
) -> None:
    store = MemoryJobRecords()
    sent: list[tuple[str, str]] = []

    job_id = client.submit(
        {"gpu": True, "gpu_ids": [1]},
        send=lambda payload, job, queue: sent.append((job, queue)),
        records=store,
        settings=settings.model_copy(update={"scheduler": scheduler}),
        workers=lambda: fleet((0,), (1,)),
    )

    assert sent == ([(job_id, "gpu.1@box1")] if sends else [])
    record = store.get(job_id)
    assert (record.queue, record.pending, record.admissions) == (
        "gpu.1@box1",
        not sends,
        int(sends),
    )
    assert record.queued_at == record.created_at


@pytest.mark.parametrize("scheduler", ["fifo", "fair"])
def test_an_explicit_queue_wins_and_is_recorded(settings: Settings, scheduler: str) -> None:
    store = MemoryJobRecords()
    sent: list[str] = []

    job_id = client.submit(
        {},
        send=lambda p, j, queue: sent.append(queue),
        records=store,
        settings=settings.model_copy(update={"scheduler": scheduler}),
        queue="other",
    )

    assert sent == (["other"] if scheduler == "fifo" else [])
    assert store.get(job_id).queue == "other"


def test_submit_refuses_more_gpus_than_any_live_worker_and_records_nothing(
    settings: Settings,
) -> None:
    store = MemoryJobRecords()
    sent: list[str] = []

    with pytest.raises(SpecError, match="gpus: asks for 2 GPUs but the largest live GPU worker"):
        client.submit(
            {"gpu": True, "gpus": 2},
            send=lambda p, j, queue: sent.append(queue),
            records=store,
            settings=settings,
            workers=lambda: fleet((), (0,), (1,)),
        )

    assert sent == []
    assert store.count() == 0
