"""Owners in the store's contract (indexes, the queued cap, totals), run against the
in-memory twins; tests/integration/test_redis_store.py runs them against Redis.

Every test takes the ``store`` or ``idempotency`` fixture only, which the Redis module
defines again.
"""

from __future__ import annotations

import pytest

from trainq.errors import QuotaExceeded
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.memory import MemoryIdempotencyKeys, MemoryJobRecords
from trainq.store.protocols import IdempotencyKeys
from trainq.store.protocols import JobRecords as JobStore


@pytest.fixture
def store() -> JobStore:
    return MemoryJobRecords()


@pytest.fixture
def idempotency() -> IdempotencyKeys:
    return MemoryIdempotencyKeys()


def _job(job_id: str, owner: str | None, created_at: float = 1_000.0) -> JobRecord:
    return JobRecord(id=job_id, spec=JobSpec(), owner=owner, created_at=created_at)


def test_jobs_are_listed_and_counted_by_owner_and_status(store: JobStore) -> None:
    for i, owner in enumerate(["alice", "bob", "alice", None, "alice"]):
        store.create(_job(f"j{i}", owner, created_at=100.0 + i))
    store.update("j2", lambda r: r.moved_to(JobStatus.RUNNING))

    assert [r.id for r in store.list(owner="alice").records] == ["j4", "j2", "j0"]
    assert [r.id for r in store.list(owner="alice", status=JobStatus.QUEUED).records] == [
        "j4",
        "j0",
    ]
    assert [r.id for r in store.list(owner="alice", status=JobStatus.RUNNING).records] == ["j2"]
    assert store.list(owner="carol").records == []
    assert store.count(owner="alice") == 3
    assert store.count(JobStatus.QUEUED, owner="alice") == 2
    assert store.count(JobStatus.QUEUED, owner="bob") == 1
    assert store.count() == 5
    assert store.owners() == ["alice", "bob"]


def test_paging_by_owner_visits_each_of_their_jobs_once(store: JobStore) -> None:
    for i in range(7):
        store.create(_job(f"a{i}", "alice", created_at=50.0))  # every one at the same time
        store.create(_job(f"b{i}", "bob", created_at=50.0))
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list(owner="alice", limit=3, cursor=cursor)
        seen += [r.id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == [f"a{i}" for i in range(7)] and len(seen) == 7


def test_the_queued_cap_refuses_a_submit_naming_the_cap_and_writes_nothing(
    store: JobStore,
) -> None:
    assert store.create(_job("q1", "alice"), max_queued=2)
    assert store.create(_job("q2", "alice"), max_queued=2)
    with pytest.raises(QuotaExceeded, match="TRAINQ_MAX_QUEUED_PER_USER=2") as refused:
        store.create(_job("q3", "alice"), max_queued=2)
    assert "alice" in str(refused.value)
    assert store.count(owner="alice") == 2
    assert store.create(_job("b1", "bob"), max_queued=2)  # another owner's count
    store.update("q1", lambda r: r.moved_to(JobStatus.RUNNING))  # no longer queued
    assert store.create(_job("q3", "alice"), max_queued=2)
    assert store.create(_job("q4", "alice"), max_queued=0)  # 0: no cap


def test_a_finished_job_adds_its_gpu_and_cpu_seconds_to_its_owner(store: JobStore) -> None:
    store.create(_job("g", "alice"))
    store.create(_job("c", "alice"))
    store.create(_job("x", "bob"))
    gpu = Attempt(number=1, gpu_ids=[0, 1], run_s=1800.0)
    cpu = Attempt(number=1, run_s=60.0)
    for job_id, attempt in (("g", gpu), ("c", cpu), ("x", cpu)):
        store.update(job_id, lambda r, a=attempt: r.moved_to(JobStatus.RUNNING, attempts=[a]))
    store.update("g", lambda r: r.moved_to(JobStatus.SUCCEEDED))
    store.update("c", lambda r: r.moved_to(JobStatus.FAILED))

    alice = store.owner_totals("alice")
    assert alice == {"finished": 2, "gpu_seconds": 3600.0, "cpu_seconds": 60.0}
    assert store.owner_totals("bob") == {}  # still running
    assert store.count(JobStatus.SUCCEEDED, owner="alice") == 1


def test_released_idempotency_key_binds_again(idempotency: IdempotencyKeys) -> None:
    assert idempotency.claim("alice/k", "job-a") == "job-a"
    idempotency.release("alice/k", "job-other")  # not its job: kept
    assert idempotency.claim("alice/k", "job-b") == "job-a"
    idempotency.release("alice/k", "job-a")
    assert idempotency.claim("alice/k", "job-b") == "job-b"
