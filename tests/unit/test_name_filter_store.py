"""The job list's name filter in the store's contract, run against the in-memory twin;
tests/integration/test_redis_store.py runs the same tests against Redis (one Lua
script), so both stores must answer every page alike, short pages included.

Every test takes the ``store`` fixture only, which the Redis module defines again.
"""

from __future__ import annotations

import pytest

from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.store.memory import MemoryJobRecords
from trainq.store.name_filter import NAME_SCAN_MAX
from trainq.store.protocols import JobRecords as JobStore


@pytest.fixture
def store() -> JobStore:
    return MemoryJobRecords()


def _named(
    job_id: str,
    name: str | None,
    created_at: float,
    owner: str | None = None,
    env: dict[str, str] | None = None,
) -> JobRecord:
    spec = JobSpec(name=name, env=env or {})
    return JobRecord(id=job_id, spec=spec, owner=owner, created_at=created_at)


def _pages(
    store: JobStore, name: str, limit: int, status: JobStatus | None = None
) -> list[list[str]]:
    """The ids of every page of the filtered walk, following next_cursor to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = store.list(status=status, limit=limit, cursor=cursor, name=name)
        pages.append([r.id for r in page.records])
        if page.next_cursor is None:
            return pages
        assert len(pages) < 100, "the filtered walk does not end"
        cursor = page.next_cursor


def test_name_filter_keeps_names_holding_the_text_ignoring_case(store: JobStore) -> None:
    names = ["ResNet-50", "resnet.small", "bert", None, "my_RESNET", "res-net"]
    for i, name in enumerate(names):
        store.create(_named(f"j{i}", name, created_at=100.0 + i))

    page = store.list(name="rEsNeT")

    assert [r.id for r in page.records] == ["j4", "j1", "j0"]
    assert page.next_cursor is None


def test_name_filter_text_is_plain_not_a_pattern(store: JobStore) -> None:
    for i, name in enumerate(["a.b", "axb", "a-b", "a_b"]):
        store.create(_named(f"j{i}", name, created_at=100.0 + i))

    assert [r.id for r in store.list(name=".").records] == ["j0"]
    assert [r.id for r in store.list(name="A-").records] == ["j2"]
    assert store.list(name="%").records == []
    assert store.list(name="[a]").records == []


def test_another_name_member_does_not_match(store: JobStore) -> None:
    # An env var called "name" holds the text: only the job's own name counts.
    store.create(_named("decoy", "other", created_at=100.0, env={"name": "needle"}))
    store.create(_named("unnamed", None, created_at=101.0, env={"name": "needle"}))
    store.create(_named("hit", "the-needle", created_at=102.0, env={"name": "needle"}))

    assert [r.id for r in store.list(name="needle").records] == ["hit"]


def test_an_empty_name_is_no_filter(store: JobStore) -> None:
    for i in range(3):
        store.create(_named(f"j{i}", None, created_at=100.0 + i))

    assert [r.id for r in store.list(name="").records] == ["j2", "j1", "j0"]


def test_name_filter_combines_with_status_and_owner(store: JobStore) -> None:
    for i in range(8):
        name = "sweep" if i % 2 == 0 else "other"
        store.create(_named(f"j{i}", name, created_at=100.0 + i, owner=("ann", "bob")[i % 4 // 2]))
    for job_id in ("j0", "j4", "j5"):
        store.update(job_id, lambda r: r.moved_to(JobStatus.RUNNING))

    by_status = store.list(status=JobStatus.RUNNING, name="sweep").records
    by_owner = store.list(owner="bob", name="sweep").records
    by_both = store.list(owner="ann", status=JobStatus.RUNNING, name="SWEEP").records

    assert [r.id for r in by_status] == ["j4", "j0"]
    assert [r.id for r in by_owner] == ["j6", "j2"]
    assert [r.id for r in by_both] == ["j4", "j0"]


def test_filtered_cursor_walk_visits_every_match_once_across_ties(store: JobStore) -> None:
    # Groups of 5 equal timestamps: the cursor lands inside a group of ties.
    expected: list[tuple[float, str]] = []
    for i in range(40):
        job_id, at = f"job-{i:02d}", 100.0 + i // 5
        name = "keep-me" if i % 3 else "drop-me"
        store.create(_named(job_id, name, created_at=at))
        if i % 3:
            expected.append((at, job_id))

    pages = _pages(store, "KEEP", limit=4)

    assert [job_id for page in pages for job_id in page] == [
        job_id for _, job_id in sorted(expected, reverse=True)
    ]
    assert all(len(page) == 4 for page in pages[:-1])


def test_a_full_page_with_nothing_after_has_no_next_cursor(store: JobStore) -> None:
    for i in range(10):
        store.create(_named(f"j{i}", "hit" if i >= 5 else "miss", created_at=100.0 + i))

    page = store.list(limit=5, name="hit")

    assert [r.id for r in page.records] == ["j9", "j8", "j7", "j6", "j5"]
    assert page.next_cursor is None


def test_one_page_examines_at_most_the_scan_cap(store: JobStore) -> None:
    # Newest first: 3 matches, then more misses than one page may examine, then 2
    # matches. The first page stops at the cap: short, yet with a cursor that goes on.
    misses = NAME_SCAN_MAX
    at = 10_000.0
    for i in range(2):
        store.create(_named(f"old-hit-{i}", "target", created_at=at + i))
    for i in range(misses):
        store.create(_named(f"miss-{i:05d}", "noise", created_at=at + 10 + i))
    for i in range(3):
        store.create(_named(f"new-hit-{i}", "target", created_at=at + 10 + misses + i))

    first = store.list(limit=50, name="target")
    assert [r.id for r in first.records] == ["new-hit-2", "new-hit-1", "new-hit-0"]
    assert first.next_cursor is not None

    second = store.list(limit=50, cursor=first.next_cursor, name="target")
    assert [r.id for r in second.records] == ["old-hit-1", "old-hit-0"]
    assert second.next_cursor is None


def test_a_page_of_a_rare_name_may_be_empty_yet_go_on(store: JobStore) -> None:
    at = 10_000.0
    store.create(_named("the-one", "rare", created_at=at))
    for i in range(NAME_SCAN_MAX + 1):
        store.create(_named(f"miss-{i:05d}", "noise", created_at=at + 1 + i))

    pages = _pages(store, "rare", limit=10)

    assert pages == [[], ["the-one"]]


def test_a_capped_page_resumes_inside_a_run_of_equal_timestamps(store: JobStore) -> None:
    # Every record created in the same instant: the cursor of the capped page points
    # into the ties, and the next page goes on after it (ids in descending order).
    for i in range(NAME_SCAN_MAX + 5):
        store.create(_named(f"m-{i:05d}", "noise", created_at=500.0))
    for i in range(2):
        store.create(_named(f"a-hit-{i}", "target", created_at=500.0))

    pages = _pages(store, "target", limit=10)

    assert pages == [[], ["a-hit-1", "a-hit-0"]]


def test_a_malformed_cursor_is_refused_with_a_name_filter(store: JobStore) -> None:
    with pytest.raises(ValueError, match="cursor"):
        store.list(cursor="nonsense", name="x")
