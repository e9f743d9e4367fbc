"""The job commands' one seam: :class:`Jobs`, straight to Redis or over the REST API.

:func:`open_jobs` chooses once per command, from the settings: with an API URL
(``TRAINQ_API_URL``, else a ``trainq login``) every job command goes over HTTP
(:mod:`trainq.cli.remote_backend`), else to Redis and the artifact store
(:class:`DirectJobs`).
Both raise the same exceptions, so the commands read the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from trainq import client, connections
from trainq.artifacts.logs import archived_lines
from trainq.artifacts.outputs import download
from trainq.cli.app import fail
from trainq.config import Settings, get_settings
from trainq.config.login import remote_api
from trainq.errors import ArtifactError, ConfigError
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import Priority
from trainq.jobs.status import JobStatus
from trainq.logs import reader
from trainq.logs.joining import LogSources
from trainq.logs.stream import LogLine
from trainq.store.paging import every_job, gathered
from trainq.store.protocols import JobPage

if TYPE_CHECKING:
    from trainq.remote.scheduling import PendingPage

# Told, in a clause ("the artifact store S could not be read (why)"), that the
# archived logs could not be read: the lines shown are the ones found elsewhere.
ArchiveFailed = Callable[[str], None]


class Jobs(Protocol):
    """What the job commands do with jobs, wherever the jobs are."""

    # Where a log file that no copy holds lines of would be ("this host").
    log_file_host: str

    def submit(self, values: Mapping[str, Any]) -> str:
        """Validate and queue a job (SpecError: nothing queued); its id."""

    def get_job(self, job_id: str) -> JobRecord:
        """The record (JobNotFound)."""

    def describe(self, job_id: str) -> tuple[JobRecord, str | None]:
        """The record, and why it waits while it is queued."""

    def list_jobs(
        self,
        status: JobStatus | None,
        limit: int,
        cursor: str | None,
        owner: str | None,
        name: str | None = None,
    ) -> JobPage:
        """Up to ``limit`` jobs, newest first, whose names contain ``name`` (ignoring
        case), in as many of the store's pages as it takes (ValueError: a malformed
        cursor)."""

    def cancel(self, job_id: str) -> JobRecord:
        """Ask for the job to stop; the record right after (AlreadyFinished)."""

    def change(
        self, job_id: str, priority: Priority | None, preemptible: bool | None
    ) -> tuple[JobRecord, str | None]:
        """A pending job's priority (NotPending; remote: AlreadyFinished), or whether it
        may be preempted; the record after, and why it waits."""

    def pending_queue(self, owner: str | None, queue: str | None, limit: int) -> PendingPage:
        """Pending jobs in the order they will be admitted, each with its reason."""

    def wait_for(
        self,
        job_id: str,
        *,
        on_update: Callable[[JobRecord], None] = ...,
        timeout_s: float | None = None,
    ) -> JobRecord:
        """Poll until the job is final (WaitTimeout after ``timeout_s``)."""

    def job_lines(
        self,
        record: JobRecord,
        query: reader.LogQuery,
        *,
        follow: bool,
        sources: LogSources,
        archive_failed: ArchiveFailed,
    ) -> Iterator[LogLine]:
        """The job's lines that ``query`` keeps; following: until the job ends."""

    def search_lines(
        self, pattern: re.Pattern[str], archive_failed: ArchiveFailed
    ) -> Iterator[LogLine]:
        """Every job's lines that match ``pattern``, job by job, newest job first."""

    def download(self, job_id: str, path: str, target: Path) -> None:
        """One artifact into ``target`` (ArtifactError naming where it was read from)."""

    def whoami(self) -> str:
        """Who submits from here, and where to: one line for people."""


@contextmanager
def open_jobs(settings: Settings | None = None) -> Iterator[Jobs]:
    """The settings' way to jobs for one command: over the API when one is configured
    (a bad configuration: exit 2), else direct to Redis."""
    settings = settings or get_settings()
    try:
        remote = remote_api(settings)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    if remote is None:
        yield DirectJobs(settings)
        return
    # Lazy: httpx, for a remote API only; `trainq worker` imports this module too.
    from trainq.cli.remote_backend import RemoteBackend
    from trainq.remote import ApiClient, RemoteJobs

    try:
        api = ApiClient(*remote, settings.api_timeout_s)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    with api:
        yield RemoteBackend(RemoteJobs(api))


class DirectJobs:
    """Jobs in Redis and the artifact store, through :mod:`trainq.client`."""

    log_file_host = "this host"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def submit(self, values: Mapping[str, Any]) -> str:
        return client.submit(values)  # the default settings: the process's, as ours

    def get_job(self, job_id: str) -> JobRecord:
        return client.get_job(job_id)

    def describe(self, job_id: str) -> tuple[JobRecord, str | None]:
        record = client.get_job(job_id)
        return record, client.waiting_reason(record, self._settings)

    def list_jobs(
        self,
        status: JobStatus | None,
        limit: int,
        cursor: str | None,
        owner: str | None,
        name: str | None = None,
    ) -> JobPage:
        def one(after: str | None, wanted: int) -> JobPage:
            return client.list_jobs(
                status=status, limit=wanted, cursor=after, owner=owner, name=name
            )

        return gathered(one, limit, cursor)

    def cancel(self, job_id: str) -> JobRecord:
        return client.cancel(job_id)

    def change(
        self, job_id: str, priority: Priority | None, preemptible: bool | None
    ) -> tuple[JobRecord, str | None]:
        record = client.change_job(job_id, priority=priority, preemptible=preemptible)
        return record, client.waiting_reason(record, self._settings)

    def pending_queue(self, owner: str | None, queue: str | None, limit: int) -> PendingPage:
        # Lazy: httpx, for a remote API only; `trainq worker` imports this module too.
        from trainq.remote.scheduling import PendingPage, QueuedJob

        found = client.scheduling.pending_page(owner, queue, limit, self._settings)
        jobs = [QueuedJob.model_validate(row) for row in found.rows()]
        return PendingPage(jobs=jobs, total=found.total)

    def wait_for(
        self,
        job_id: str,
        *,
        on_update: Callable[[JobRecord], None] = lambda _: None,
        timeout_s: float | None = None,
    ) -> JobRecord:
        return client.wait_for(job_id, on_update=on_update, timeout_s=timeout_s)

    def job_lines(
        self,
        record: JobRecord,
        query: reader.LogQuery,
        *,
        follow: bool,
        sources: LogSources,
        archive_failed: ArchiveFailed,
    ) -> Iterator[LogLine]:
        stream = connections.log_stream(self._settings)
        archive = reader.of_job(self._archives(archive_failed), record.id)
        if not follow:
            return reader.job_lines(record, stream, query, archive, sources)
        return reader.follow(
            record,
            stream,
            query,
            lambda: client.get_job(record.id).status.is_terminal,
            archive=archive,
            sources=sources,
        )

    def search_lines(
        self, pattern: re.Pattern[str], archive_failed: ArchiveFailed
    ) -> Iterator[LogLine]:
        records = every_job(connections.records(self._settings))
        stream = connections.log_stream(self._settings)
        return reader.search(records, stream, pattern, self._archives(archive_failed))

    def download(self, job_id: str, path: str, target: Path) -> None:
        store = connections.artifact_store(self._settings)
        try:
            download(store, job_id, path, target)
        except ArtifactError as exc:
            raise ArtifactError(f"cannot download {path} from {store.url}: {exc}") from None

    def whoami(self) -> str:
        redis_url = connections.shown_url(self._settings.redis_url)
        return f"{self._settings.user}, direct to Redis at {redis_url}"

    def _archives(self, failed: ArchiveFailed) -> reader.JobArchive:
        """The attempts' archived logs in the artifact store; a store that cannot be
        read counts as none, told to ``failed`` once."""
        store_url = connections.shown_url(self._settings.artifact_location)

        def archived(job_id: str, attempt: int) -> Iterator[str] | None:
            return archived_lines(connections.artifact_store(self._settings), job_id, attempt)

        def broke(exc: Exception) -> None:
            failed(f"the artifact store {store_url} could not be read ({exc})")

        return reader.failing_soft(archived, broke)
