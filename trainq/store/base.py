"""The job store protocol that the runner, client and CLI are written against."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from trainq.record import JobRecord
from trainq.status import JobStatus

# Takes the stored record, returns the record to store (checked by the store).
Mutation = Callable[[JobRecord], JobRecord]


@dataclass(frozen=True)
class JobPage:
    """Records newest first, and the cursor of the next page (None at the end)."""

    records: list[JobRecord]
    next_cursor: str | None


class JobStore(Protocol):
    def create(self, record: JobRecord) -> bool:
        """Store a new record; False (and nothing written) if its id exists."""

    def get(self, job_id: str) -> JobRecord:
        """The record, or :class:`~trainq.errors.JobNotFound`."""

    def update(self, job_id: str, mutate: Mutation) -> JobRecord:
        """Atomically apply ``mutate`` to the stored record and return the result.

        The status change ``mutate`` makes is checked against the transition map;
        :class:`~trainq.errors.IllegalTransition` leaves the record untouched.
        """

    def list(
        self, status: JobStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Newest first, optionally one status only, without scanning every key."""

    def count(self, status: JobStatus | None = None) -> int:
        """How many jobs (in ``status``)."""

    def totals(self) -> dict[str, float]:
        """The cluster's totals over finished jobs (see :mod:`trainq.tally`)."""

    def claim_idempotency_key(self, key: str, job_id: str) -> str:
        """Bind ``key`` to ``job_id`` unless it is bound already; the bound job id."""

    def request_cancel(self, job_id: str) -> None:
        """Raise the job's cancel flag (its supervisor, wherever it runs, acts on it)."""

    def cancel_requested(self, job_id: str) -> bool:
        """Whether the job's cancel flag is raised."""

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> int | None:
        """Become the job's one supervisor for ``ttl_s``: a new fencing token, or None
        if another owner holds the lease."""

    def renew_lease(self, job_id: str, token: int, ttl_s: float) -> bool:
        """Extend the lease of ``token``; False if it is no longer held by it."""

    def release_lease(self, job_id: str, token: int) -> None:
        """Give the lease up, if ``token`` still holds it."""

    def lease_holder(self, job_id: str) -> str | None:
        """``"<token>:<owner>"`` of the live lease, or None when no supervisor holds it."""

    def claim_requeue(self, job_id: str, ttl_s: float) -> bool:
        """True for one caller per ``ttl_s``: the one that may re-queue the job."""


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


def every_job(store: JobStore, status: JobStatus | None = None) -> Iterator[JobRecord]:
    """Every job (in ``status``), newest first, page by page."""
    cursor = None
    while True:
        page = store.list(status=status, limit=500, cursor=cursor)
        yield from page.records
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
