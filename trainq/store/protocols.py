"""What the rest of trainq may ask of the store, split by concern.

- :class:`JobRecords`: the job records, their status indexes and the totals over
  finished jobs. Callers, the runner and the reconciler read and write them.
- :class:`Coordination`: supervisor leases (with fencing tokens), cancel flags, yield
  requests (preemption) and re-queue claims: how supervisors, reconcilers, the
  scheduler and cancelling callers agree on who acts on a job, wherever each runs.
- :class:`IdempotencyKeys`: which job a client-chosen key names (submit only).

Each has a Redis implementation (:mod:`trainq.store.redis`) and an in-memory twin
for unit tests (:mod:`trainq.store.memory`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus

# Takes the stored record, returns the record to store (checked by the store).
Mutation = Callable[[JobRecord], JobRecord]


@dataclass(frozen=True)
class JobPage:
    """Records newest first, and the cursor of the next page (None at the end)."""

    records: list[JobRecord]
    next_cursor: str | None


class JobRecords(Protocol):
    def create(self, record: JobRecord, max_queued: int = 0) -> bool:
        """Store a new record; False (and nothing written) if its id exists.

        With ``max_queued`` > 0, :class:`~trainq.errors.QuotaExceeded` (and nothing
        written) when the record's owner already has that many queued jobs.
        """

    def replicated(self, job_id: str, replicas: int, wait_s: float) -> int:
        """How many replicas (up to ``replicas``) hold the job and every write made so
        far, waiting up to ``wait_s`` for them (Redis WAIT); 0 when the job is not there."""

    def withdraw(self, record: JobRecord) -> str:
        """Take back a new job whose creation was not confirmed: "withdrawn" (deleted
        while still pending), "absent" (no such job) or "taken" (admitted already)."""

    def get(self, job_id: str) -> JobRecord:
        """The record, or :class:`~trainq.errors.JobNotFound`."""

    def update(self, job_id: str, mutate: Mutation) -> JobRecord:
        """Atomically apply ``mutate`` to the stored record and return the result.

        The status change ``mutate`` makes is checked against the transition map;
        :class:`~trainq.errors.IllegalTransition` leaves the record untouched.
        """

    def list(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
        name: str | None = None,
    ) -> JobPage:
        """Newest first, optionally one status and one owner only, without scanning
        every key.

        With ``name``, only jobs whose name contains it (ASCII case ignored); such a
        page examines a bounded number of jobs (:mod:`trainq.store.name_filter`), so it
        may hold fewer than ``limit`` while ``next_cursor`` is not None.
        """

    def count(self, status: JobStatus | None = None, owner: str | None = None) -> int:
        """How many jobs (in ``status``, of ``owner``)."""

    def totals(self) -> dict[str, float]:
        """The cluster's totals over finished jobs (see :mod:`trainq.store.totals`)."""

    def owners(self) -> builtins.list[str]:
        """Every name that owns a job, sorted."""

    def owner_totals(self, owner: str) -> dict[str, float]:
        """The owner's totals over finished jobs (:func:`~trainq.store.totals.owner_increments`)."""


class Coordination(Protocol):
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

    def request_yield(self, job_id: str, for_job: str, ttl_s: float) -> None:
        """Ask the running job to yield (checkpoint, stop, pending again) to ``for_job``."""

    def stop_requests(self, job_id: str) -> tuple[bool, str | None]:
        """In one look: whether the job's cancel flag is raised, and the job it was asked
        to yield to (None: not asked)."""

    def clear_yield(self, job_id: str) -> None:
        """Forget a yield request (the job yielded, or it ended first)."""


class IdempotencyKeys(Protocol):
    def claim(self, key: str, job_id: str) -> str:
        """Bind ``key`` to ``job_id`` unless it is bound already; the bound job id."""

    def release(self, key: str, job_id: str) -> None:
        """Unbind ``key`` if it is bound to ``job_id`` (a submit that was refused)."""
