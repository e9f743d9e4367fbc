"""The reconciler with the in-memory store and runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from trainq.config import Settings
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.base import Exit, Launch
from trainq.runtime.memory import MemoryRuntime, Played
from trainq.store.memory import MemoryCoordination, MemoryJobRecords
from trainq.worker.reconciler import Reconciler


@dataclass
class Parts:
    reconciler: Reconciler
    store: MemoryJobRecords
    flags: MemoryCoordination
    runtime: MemoryRuntime
    requeued: list[str] = field(default_factory=list)


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    store, flags = MemoryJobRecords(), MemoryCoordination()
    runtime = MemoryRuntime(lambda launch: Played([], Exit(0)))
    requeued: list[str] = []
    settings = Settings(log_dir=tmp_path, checkpoint_dir=tmp_path)
    reconciler = Reconciler(store, flags, runtime, settings, lambda r: requeued.append(r.id))
    return Parts(reconciler, store, flags, runtime, requeued)


def running(job_id: str) -> JobRecord:
    attempt = Attempt(number=1, handle="h", started_at=1.0)
    return JobRecord(id=job_id, spec=JobSpec()).moved_to(JobStatus.RUNNING, attempts=[attempt])


def launch(job_id: str, tmp_path: Path) -> Launch:
    return Launch(job_id, 1, "img", None, {}, tmp_path, "w")


def test_attempts_of_final_or_unknown_jobs_are_removed(parts: Parts, tmp_path: Path) -> None:
    store, flags, runtime, reconciler = parts.store, parts.flags, parts.runtime, parts.reconciler
    store.create(running("alive").moved_to(JobStatus.SUCCEEDED))
    store.create(running("live"))
    flags.acquire_lease("live", "w", 60)
    done = runtime.start(launch("alive", tmp_path))
    unknown = runtime.start(launch("ghost", tmp_path))
    live = runtime.start(launch("live", tmp_path))

    result = reconciler.run_once()

    assert sorted(result.removed) == sorted([done.ref, unknown.ref])
    assert [f.handle for f in runtime.find()] == [live]


def test_only_jobs_without_a_live_lease_are_requeued_once(
    parts: Parts,
) -> None:
    store, flags, reconciler, requeued = parts.store, parts.flags, parts.reconciler, parts.requeued
    store.create(running("orphan"))
    store.create(running("supervised"))
    flags.acquire_lease("supervised", "w", 60)
    store.create(JobRecord(id="queued", spec=JobSpec()))

    reconciler.run_once()
    reconciler.run_once()  # a second pass within the claim does not send it again

    assert requeued == ["orphan"]


def test_an_unsupervised_cancel_is_finished_by_the_reconciler(parts: Parts, tmp_path: Path) -> None:
    store, flags, runtime = parts.store, parts.flags, parts.runtime
    reconciler, requeued = parts.reconciler, parts.requeued
    store.create(running("stopme"))
    flags.request_cancel("stopme")
    runtime.start(launch("stopme", tmp_path))

    result = reconciler.run_once()

    assert result.cancelled == ["stopme"] and requeued == []
    assert store.get("stopme").status == JobStatus.CANCELLED
    assert runtime.find("stopme") == []
