"""The store's contracts (records, coordination, idempotency keys), run against the
in-memory twins.

Every test takes the ``store``, ``coordination`` or ``idempotency`` fixture only, so
tests/integration/test_redis_store.py runs the same tests against Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from trainq.errors import IllegalTransition, JobNotFound
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.memory import MemoryCoordination, MemoryIdempotencyKeys, MemoryJobRecords
from trainq.store.protocols import Coordination, IdempotencyKeys
from trainq.store.protocols import JobRecords as JobStore


@pytest.fixture
def store() -> Iterator[JobStore]:
    yield MemoryJobRecords()


@pytest.fixture
def coordination() -> Iterator[Coordination]:
    yield MemoryCoordination()


@pytest.fixture
def idempotency() -> Iterator[IdempotencyKeys]:
    yield MemoryIdempotencyKeys()


def _record(job_id: str, created_at: float = 1_000.0, **changes: object) -> JobRecord:
    return JobRecord(id=job_id, spec=JobSpec(), created_at=created_at, **changes)


def _collect(store: JobStore, status: JobStatus | None, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = store.list(status=status, limit=limit, cursor=cursor)
        pages.append([r.id for r in page.records])
        if page.next_cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"
        cursor = page.next_cursor


def test_create_then_get(store: JobStore) -> None:
    record = _record("a", error="kept")

    assert store.create(record) is True
    assert store.get("a") == record


def test_create_twice_keeps_the_first_record(store: JobStore) -> None:
    first = _record("a", error="first")
    second = _record("a", error="second")

    assert store.create(first) is True
    assert store.create(second) is False
    assert store.get("a").error == "first"
    assert store.count() == 1


def test_create_sent_again_after_a_lost_answer_is_the_same_job(store: JobStore) -> None:
    record = _record("a", owner="ann")

    assert store.create(record) is True
    assert store.create(record) is True  # a retry after a dropped connection
    assert store.create(record, max_queued=1) is True  # its own place does not count
    assert store.count() == 1


def test_withdraw_deletes_a_pending_job_with_its_index_entries(store: JobStore) -> None:
    pending = _record("a", owner="ann", queue="cpu", queued_at=1_000.0)
    store.create(pending)

    assert store.withdraw(pending) == "withdrawn"

    with pytest.raises(JobNotFound):
        store.get("a")
    assert store.count() == 0
    assert store.count(owner="ann") == 0
    assert store.list().records == []
    assert store.withdraw(pending) == "absent"


def test_withdraw_leaves_a_job_the_scheduler_admitted(store: JobStore) -> None:
    pending = _record("a", owner="ann", queue="cpu", queued_at=1_000.0)
    store.create(pending)
    store.update("a", lambda r: r.moved_to(r.status, admitted_at=1_001.0, admissions=1))

    assert store.withdraw(pending) == "taken"
    assert store.get("a").admitted_at == 1_001.0


def test_get_unknown_raises_job_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound, match="nope"):
        store.get("nope")
    with pytest.raises(KeyError):
        store.get("nope")


def test_update_unknown_raises_job_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        store.update("nope", lambda r: r.moved_to(JobStatus.RUNNING))


def test_update_applies_the_mutation(store: JobStore) -> None:
    store.create(_record("a"))

    returned = store.update("a", lambda r: r.moved_to(JobStatus.RUNNING, error="e"))

    stored = store.get("a")
    assert stored == returned
    assert stored.status == JobStatus.RUNNING
    assert stored.error == "e"
    assert stored.started_at is not None


def test_update_refuses_illegal_transition_and_keeps_the_record(store: JobStore) -> None:
    store.create(_record("a"))
    before = store.get("a")

    with pytest.raises(IllegalTransition):
        store.update("a", lambda r: r.moved_to(JobStatus.SUCCEEDED, error="x"))

    assert store.get("a") == before


def test_update_checks_a_status_set_without_moved_to(store: JobStore) -> None:
    store.create(_record("a"))
    before = store.get("a")

    with pytest.raises(IllegalTransition):
        store.update("a", lambda r: r.model_copy(update={"status": JobStatus.SUCCEEDED}))

    assert store.get("a") == before


def test_update_of_a_terminal_record_is_refused(store: JobStore) -> None:
    store.create(_record("a"))
    store.update("a", lambda r: r.moved_to(JobStatus.FAILED, error="boom"))
    before = store.get("a")

    with pytest.raises(IllegalTransition):
        store.update("a", lambda r: r.moved_to(r.status, error="again"))

    assert store.get("a") == before


def test_list_is_newest_first(store: JobStore) -> None:
    for i, job_id in enumerate(["old", "mid", "new"]):
        store.create(_record(job_id, created_at=100.0 + i))

    page = store.list()

    assert [r.id for r in page.records] == ["new", "mid", "old"]
    assert page.next_cursor is None


def test_list_by_status(store: JobStore) -> None:
    for i in range(6):
        store.create(_record(f"j{i}", created_at=100.0 + i))
    for job_id in ("j1", "j4"):
        store.update(job_id, lambda r: r.moved_to(JobStatus.RUNNING))
    store.update("j2", lambda r: r.moved_to(JobStatus.CANCELLED))

    assert [r.id for r in store.list(status=JobStatus.RUNNING).records] == ["j4", "j1"]
    assert [r.id for r in store.list(status=JobStatus.CANCELLED).records] == ["j2"]
    assert [r.id for r in store.list(status=JobStatus.QUEUED).records] == ["j5", "j3", "j0"]
    assert store.list(status=JobStatus.SUCCEEDED).records == []


def _fill_with_ties(store: JobStore) -> list[str]:
    """25 records, several sharing one created_at; their ids newest first."""
    created = [100.0 + (i // 4) for i in range(25)]  # groups of 4 equal timestamps
    ids = [f"job-{i:02d}" for i in range(25)]
    for job_id, at in zip(ids, created, strict=True):
        store.create(_record(job_id, created_at=at))
    return [job_id for _, job_id in sorted(zip(created, ids, strict=True), reverse=True)]


def test_cursor_pagination_visits_every_record_once(store: JobStore) -> None:
    expected = _fill_with_ties(store)

    pages = _collect(store, None, limit=7)

    assert [len(p) for p in pages] == [7, 7, 7, 4]
    visited = [job_id for page in pages for job_id in page]
    assert visited == expected
    assert len(set(visited)) == 25


def test_cursor_pagination_with_many_equal_timestamps(store: JobStore) -> None:
    # More ties than one page plus any look-ahead a store may fetch to step over them.
    ids = [f"same-{i:02d}" for i in range(60)]
    for job_id in ids:
        store.create(_record(job_id, created_at=500.0))

    visited = [job_id for page in _collect(store, None, limit=7) for job_id in page]

    assert visited == sorted(ids, reverse=True)


def test_cursor_pagination_by_status(store: JobStore) -> None:
    expected = _fill_with_ties(store)
    running = expected[::2]
    for job_id in running:
        store.update(job_id, lambda r: r.moved_to(JobStatus.RUNNING))

    pages = _collect(store, JobStatus.RUNNING, limit=7)

    assert [job_id for page in pages for job_id in page] == running
    assert all(len(page) <= 7 for page in pages)


def test_exact_page_size_has_no_next_cursor(store: JobStore) -> None:
    for i in range(7):
        store.create(_record(f"j{i}", created_at=100.0 + i))

    page = store.list(limit=7)

    assert len(page.records) == 7
    assert page.next_cursor is None


def test_count(store: JobStore) -> None:
    assert store.count() == 0
    for i in range(5):
        store.create(_record(f"j{i}", created_at=100.0 + i))
    store.update("j0", lambda r: r.moved_to(JobStatus.RUNNING))
    store.update("j1", lambda r: r.moved_to(JobStatus.RUNNING))

    assert store.count() == 5
    assert store.count(JobStatus.RUNNING) == 2
    assert store.count(JobStatus.QUEUED) == 3
    assert store.count(JobStatus.FAILED) == 0


def test_claim_idempotency_key_returns_the_first_job(idempotency: IdempotencyKeys) -> None:
    assert idempotency.claim("key-1", "job-a") == "job-a"
    assert idempotency.claim("key-1", "job-b") == "job-a"
    assert idempotency.claim("key-1", "job-a") == "job-a"
    assert idempotency.claim("key-2", "job-b") == "job-b"


def test_one_lease_holder_at_a_time_with_growing_fencing_tokens(
    coordination: Coordination,
) -> None:
    first = coordination.acquire_lease("j", "first", ttl_s=30)
    assert first is not None
    assert coordination.acquire_lease("j", "second", ttl_s=30) is None
    assert coordination.lease_holder("j") == f"{first}:first"
    assert coordination.renew_lease("j", first, ttl_s=30)

    coordination.release_lease("j", first + 1)  # not its token: nothing happens
    assert coordination.lease_holder("j") == f"{first}:first"
    coordination.release_lease("j", first)
    assert coordination.lease_holder("j") is None
    assert not coordination.renew_lease("j", first, ttl_s=30)

    second = coordination.acquire_lease("j", "second", ttl_s=30)
    assert second is not None and second > first
    assert coordination.acquire_lease("other", "first", ttl_s=30) is not None


def test_an_unrenewed_lease_expires(coordination: Coordination) -> None:
    token = coordination.acquire_lease("j", "gone", ttl_s=0.6)
    assert token is not None
    deadline = time.monotonic() + 5
    while coordination.lease_holder("j") is not None:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert not coordination.renew_lease("j", token, ttl_s=30)
    assert coordination.acquire_lease("j", "next", ttl_s=30) is not None


def test_cancel_flags_are_per_job(coordination: Coordination) -> None:
    assert not coordination.cancel_requested("a")
    coordination.request_cancel("a")
    coordination.request_cancel("a")
    assert coordination.cancel_requested("a") and not coordination.cancel_requested("b")


def test_one_requeue_claim_per_ttl(coordination: Coordination) -> None:
    assert coordination.claim_requeue("j", ttl_s=30)
    assert not coordination.claim_requeue("j", ttl_s=30)
    assert coordination.claim_requeue("k", ttl_s=30)
