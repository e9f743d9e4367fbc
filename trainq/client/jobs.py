"""Reading, waiting for and cancelling jobs: what Python, the CLI and the API call."""

from __future__ import annotations

from collections.abc import Callable

from trainq import connections
from trainq.celery_app import app
from trainq.client.scheduling import pending_reason
from trainq.cluster import queues
from trainq.config import Settings, get_settings
from trainq.errors import AlreadyFinished, IllegalTransition
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus
from trainq.jobs.waiting import until_final
from trainq.store.protocols import Coordination, JobPage, JobRecords


def get_job(job_id: str, records: JobRecords | None = None) -> JobRecord:
    return (records or connections.records()).get(job_id)


def waiting_reason(record: JobRecord, settings: Settings | None = None) -> str | None:
    """Why a queued job has not started: why the scheduler has not admitted it yet (its
    place, its owner's quota, a job yielding to it, no worker for its queue), or once
    sent, its place in its broker queue; None for a job that is not queued."""
    if record.status != JobStatus.QUEUED:
        return None
    if record.pending:
        return pending_reason(record, settings)
    settings = settings or get_settings()
    workers = connections.live_workers(settings)
    return queues.waiting_reason(record, settings, connections.client(settings), workers)


def list_jobs(
    status: JobStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
    records: JobRecords | None = None,
    owner: str | None = None,
    name: str | None = None,
) -> JobPage:
    """A page of jobs, newest first (in ``status``, of ``owner``, whose names contain
    ``name``, ignoring case). A page filtered by name examines a bounded number of
    jobs: it may hold fewer than ``limit`` while ``next_cursor`` is not None."""
    store = records or connections.records()
    return store.list(status=status, limit=limit, cursor=cursor, owner=owner, name=name)


def wait_for(
    job_id: str,
    *,
    records: JobRecords | None = None,
    timeout_s: float | None = None,
    poll_interval_s: float = 0.5,
    on_update: Callable[[JobRecord], None] = lambda _: None,
) -> JobRecord:
    """Poll the store until the job is final; ``on_update`` sees each new version.

    :class:`~trainq.errors.WaitTimeout` (also a ``TimeoutError``) after ``timeout_s``.
    """
    records = records or connections.records()
    return until_final(
        lambda: records.get(job_id),
        timeout_s=timeout_s,
        poll_interval_s=poll_interval_s,
        on_update=on_update,
    )


def revoke(job_id: str) -> None:
    """Let workers skip the job's message (without terminate: the flag is the truth)."""
    app.control.revoke(job_id)


def cancel(
    job_id: str,
    *,
    revoke: Callable[[str], None] = revoke,
    records: JobRecords | None = None,
    coordination: Coordination | None = None,
) -> JobRecord:
    """Ask for the job to be cancelled; the record as it stands right after.

    Cooperative: the cancel flag in Redis is the truth. A queued job is recorded
    ``cancelled`` at once and never starts (``revoke`` only lets workers skip its
    message early). A running job's supervisor sees the flag, stops the container
    (SIGTERM, grace, SIGKILL) and only then records ``cancelled``. A final job
    raises :class:`AlreadyFinished` and nothing changes.
    """
    records = records or connections.records()
    coordination = coordination or connections.coordination()
    record = records.get(job_id)
    if record.status.is_terminal:
        raise AlreadyFinished(f"job {job_id} already {record.status}: nothing to cancel")
    coordination.request_cancel(job_id)
    revoke(job_id)

    def cancel_if_queued(r: JobRecord) -> JobRecord:
        if r.status == JobStatus.QUEUED:
            return r.moved_to(JobStatus.CANCELLED, error="cancelled before it started")
        return r

    try:
        return records.update(job_id, cancel_if_queued)
    except IllegalTransition:
        record = records.get(job_id)  # it ended meanwhile
        if record.status == JobStatus.CANCELLED:
            return record
        raise AlreadyFinished(f"job {job_id} already {record.status}: nothing to cancel") from None
