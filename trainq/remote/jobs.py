"""Jobs through the REST API: what :mod:`trainq.client` does against Redis, over HTTP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from trainq.errors import JobNotFound, TrainqError
from trainq.jobs.record import Artifact, JobRecord
from trainq.jobs.spec import Priority
from trainq.jobs.status import JobStatus
from trainq.jobs.waiting import until_final
from trainq.logs.joining import LogSources
from trainq.logs.reader import LogQuery
from trainq.logs.stream import LogLine
from trainq.remote import artifacts, logs, scheduling
from trainq.remote.answers import parsed, waiting_of
from trainq.remote.http import ApiClient, job_path
from trainq.store.paging import every_record, gathered
from trainq.store.protocols import JobPage

# The API's largest page (GET /train?limit=); a longer list is read page by page.
PAGE_LIMIT = 500


class Identity(BaseModel):
    """Whom the token names (GET /me)."""

    name: str
    admin: bool


class _Accepted(BaseModel):
    id: str


class RemoteJobs:
    """Submit, read, list, wait for and cancel jobs, read their logs and fetch their
    artifacts, through the API that ``api`` talks to."""

    def __init__(self, api: ApiClient, poll_interval_s: float = 0.5) -> None:
        self.api = api
        self.poll_interval_s = poll_interval_s

    @property
    def url(self) -> str:
        return self.api.url

    def me(self) -> Identity:
        try:
            data = self.api.fetch("GET", "/me")
        except JobNotFound:
            raise TrainqError(f"the API at {self.url} has no /me: is it trainq's?") from None
        return parsed(Identity, data, self.url)

    def submit(self, values: Mapping[str, Any]) -> str:
        """POST /train; the job id (the first job of an idempotency key already used)."""
        return parsed(_Accepted, self.api.fetch("POST", "/train", json=dict(values)), self.url).id

    def get_job(self, job_id: str) -> tuple[JobRecord, str | None]:
        """The record, and why it waits while it is queued."""
        data = self.api.fetch("GET", job_path(job_id))
        return parsed(JobRecord, data, self.url), waiting_of(data)

    def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
        name: str | None = None,
    ) -> JobPage:
        """Up to ``limit`` jobs newest first (whose names contain ``name``), in as many
        of the API's pages as it takes."""

        def one(after: str | None, wanted: int) -> JobPage:
            params = {
                "status": status.value if status else None,
                "limit": min(wanted, PAGE_LIMIT),
                "cursor": after,
                "owner": owner,
                "name": name,
            }
            jobs, next_cursor = _page(self.api.fetch("GET", "/train", params=params), self.url)
            return JobPage([parsed(JobRecord, job, self.url) for job in jobs], next_cursor)

        return gathered(one, limit, cursor)

    def every_job(self) -> Iterator[JobRecord]:
        """Every job the token may see, newest first, page by page."""
        return every_record(lambda cursor: self.list_jobs(limit=PAGE_LIMIT, cursor=cursor))

    def cancel(self, job_id: str) -> JobRecord:
        """DELETE /train/{id}: the record right after (AlreadyFinished: 409)."""
        return parsed(JobRecord, self.api.fetch("DELETE", job_path(job_id)), self.url)

    def change(
        self, job_id: str, priority: Priority | None = None, preemptible: bool | None = None
    ) -> tuple[JobRecord, str | None]:
        """PATCH /train/{id}: a pending job's priority, or whether it may be preempted;
        the record after and why it waits (AlreadyFinished: 409, not pending or final)."""
        return scheduling.change(self.api, job_id, priority, preemptible)

    def pending_queue(
        self, owner: str | None = None, queue: str | None = None, limit: int = 100
    ) -> scheduling.PendingPage:
        """GET /queue: pending jobs in the order they will be admitted, with reasons."""
        return scheduling.pending(self.api, owner, queue, limit)

    def wait_for(
        self,
        job_id: str,
        *,
        on_update: Callable[[JobRecord], None] = lambda _: None,
        timeout_s: float | None = None,
    ) -> JobRecord:
        """Poll the job until it is final; ``on_update`` sees each new version.
        :class:`~trainq.errors.WaitTimeout` after ``timeout_s``."""
        return until_final(
            lambda: self.get_job(job_id)[0],
            timeout_s=timeout_s,
            poll_interval_s=self.poll_interval_s,
            on_update=on_update,
        )

    def log_lines(
        self,
        job_id: str,
        query: LogQuery,
        *,
        follow: bool = False,
        sources: LogSources | None = None,
        archive_failed: Callable[[str], None] = lambda _: None,
    ) -> Iterator[LogLine]:
        """The job's lines that ``query`` keeps, as :func:`trainq.logs.reader.job_lines`
        (or, following, :func:`~trainq.logs.reader.follow`) gives them."""
        got = sources if sources is not None else LogSources()
        if follow:
            return logs.follow(self.api, job_id, query, got, archive_failed)
        return logs.job_lines(self.api, job_id, query, got, archive_failed)

    def search_logs(
        self, pattern: re.Pattern[str], archive_failed: Callable[[str], None] = lambda _: None
    ) -> Iterator[LogLine]:
        """Every line of every job that matches ``pattern``, job by job."""
        return logs.search(self.api, self.every_job(), pattern, archive_failed)

    def artifacts(self, job_id: str) -> list[Artifact]:
        return artifacts.listed(self.api, job_id)

    def download(self, job_id: str, path: str, target: Path) -> None:
        """The artifact's bytes into ``target`` (whole, or not at all)."""
        artifacts.download(self.api, job_id, path, target)


def _page(data: Any, url: str) -> tuple[list[Any], str | None]:
    jobs = data.get("jobs") if isinstance(data, dict) else None
    cursor = data.get("next_cursor") if isinstance(data, dict) else None
    if not isinstance(jobs, list) or not isinstance(cursor, str | None):
        raise TrainqError(f"the API at {url} answered GET /train with no page of jobs")
    return jobs, cursor
