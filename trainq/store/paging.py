"""Pages of jobs, newest first: the cursor both stores hand out, a walk over all, and a
page gathered from short ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus
from trainq.store.protocols import JobPage, JobRecords


def encode_cursor(score: float, job_id: str) -> str:
    return f"{score!r}:{job_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, id) position a cursor points after; ValueError if malformed."""
    score, sep, job_id = cursor.partition(":")
    if not sep or not job_id:
        raise ValueError(f"malformed cursor {cursor!r}")
    return float(score), job_id


def is_after(score: float, job_id: str, cursor: tuple[float, str]) -> bool:
    """Whether (score, id) comes after the cursor in newest-first order.

    Equal scores are ordered by id, descending, as Redis' ZREVRANGE orders them.
    """
    cursor_score, cursor_id = cursor
    return score < cursor_score or (score == cursor_score and job_id < cursor_id)


def every_job(records: JobRecords, status: JobStatus | None = None) -> Iterator[JobRecord]:
    """Every job (in ``status``), newest first, page by page."""
    return every_record(lambda cursor: records.list(status=status, limit=500, cursor=cursor))


def every_record(page: Callable[[str | None], JobPage]) -> Iterator[JobRecord]:
    """Every record of the pages ``page`` gives (the first for None, then each
    ``next_cursor``), in order."""
    cursor = None
    while True:
        found = page(cursor)
        yield from found.records
        if found.next_cursor is None:
            return
        cursor = found.next_cursor


def gathered(
    page: Callable[[str | None, int], JobPage], limit: int, cursor: str | None = None
) -> JobPage:
    """Up to ``limit`` records from as many pages as it takes: ``page(cursor, wanted)``
    gives the page after ``cursor`` of at most ``wanted``, which may be short before the
    end (a source's largest page, a name filter's bounded scan)."""
    records: list[JobRecord] = []
    while True:
        found = page(cursor, limit - len(records))
        records += found.records
        cursor = found.next_cursor
        if cursor is None or len(records) >= limit:
            return JobPage(records=records, next_cursor=cursor)
