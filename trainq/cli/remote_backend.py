"""The job commands over the REST API: :class:`~trainq.cli.backend.Jobs` through
:class:`~trainq.remote.RemoteJobs` (chosen by :func:`trainq.cli.backend.open_jobs`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from trainq.errors import ArtifactError
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import Priority
from trainq.jobs.status import JobStatus
from trainq.logs import reader
from trainq.logs.joining import LogSources
from trainq.logs.stream import LogLine
from trainq.remote import RemoteJobs
from trainq.remote.scheduling import PendingPage
from trainq.store.protocols import JobPage


class RemoteBackend:
    """Jobs behind the REST API, through :class:`~trainq.remote.RemoteJobs`."""

    log_file_host = "the API's host"

    def __init__(self, remote: RemoteJobs) -> None:
        self._remote = remote

    def submit(self, values: Mapping[str, Any]) -> str:
        return self._remote.submit(values)

    def get_job(self, job_id: str) -> JobRecord:
        return self._remote.get_job(job_id)[0]

    def describe(self, job_id: str) -> tuple[JobRecord, str | None]:
        return self._remote.get_job(job_id)

    def list_jobs(
        self,
        status: JobStatus | None,
        limit: int,
        cursor: str | None,
        owner: str | None,
        name: str | None = None,
    ) -> JobPage:
        return self._remote.list_jobs(status, limit, cursor, owner, name)

    def cancel(self, job_id: str) -> JobRecord:
        return self._remote.cancel(job_id)

    def change(
        self, job_id: str, priority: Priority | None, preemptible: bool | None
    ) -> tuple[JobRecord, str | None]:
        return self._remote.change(job_id, priority, preemptible)

    def pending_queue(self, owner: str | None, queue: str | None, limit: int) -> PendingPage:
        return self._remote.pending_queue(owner, queue, limit)

    def wait_for(
        self,
        job_id: str,
        *,
        on_update: Callable[[JobRecord], None] = lambda _: None,
        timeout_s: float | None = None,
    ) -> JobRecord:
        return self._remote.wait_for(job_id, on_update=on_update, timeout_s=timeout_s)

    def job_lines(
        self,
        record: JobRecord,
        query: reader.LogQuery,
        *,
        follow: bool,
        sources: LogSources,
        archive_failed: Callable[[str], None],
    ) -> Iterator[LogLine]:
        return self._remote.log_lines(
            record.id, query, follow=follow, sources=sources, archive_failed=archive_failed
        )

    def search_lines(
        self, pattern: re.Pattern[str], archive_failed: Callable[[str], None]
    ) -> Iterator[LogLine]:
        return self._remote.search_logs(pattern, archive_failed)

    def download(self, job_id: str, path: str, target: Path) -> None:
        try:
            self._remote.download(job_id, path, target)
        except ArtifactError as exc:
            raise ArtifactError(f"cannot download {path} from {self._remote.url}: {exc}") from None

    def whoami(self) -> str:
        me = self._remote.me()
        return f"{me.name} ({'admin' if me.admin else 'user'}) at the trainq API {self._remote.url}"
