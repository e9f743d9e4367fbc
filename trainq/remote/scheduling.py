"""The scheduler through the API: a job's priority (``PATCH /train/{id}``), the pending
queue (``GET /queue``) and an owner's quota (``/users/{name}/quota``, admins).

The models are the API's answers as a client reads them; the CLI builds the same ones
from Redis in direct mode, so both modes print alike.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from trainq.jobs.record import JobRecord
from trainq.jobs.spec import Priority
from trainq.remote.answers import parsed, waiting_of
from trainq.remote.http import ApiClient, job_path
from trainq.scheduler.policy import OwnerPolicy


class QueuedJob(BaseModel):
    """A pending job, its place in the admission order (1: next) and why it waits."""

    position: int
    id: str
    owner: str
    priority: Priority
    queue: str
    name: str | None = None
    created_at: float
    reason: str


class PendingPage(BaseModel):
    """The pending jobs that match, in admission order; ``total`` before the limit."""

    jobs: list[QueuedJob]
    total: int


class OwnerQuota(OwnerPolicy):
    """An owner's policy, and the cluster's defaults where it sets none."""

    owner: str
    default_max_priority: Priority
    default_queued: int | None = None


def change(
    api: ApiClient, job_id: str, priority: Priority | None, preemptible: bool | None
) -> tuple[JobRecord, str | None]:
    """PATCH /train/{id}: the record after, and why it waits (409: not pending, or final)."""
    given = {"priority": priority, "preemptible": preemptible}
    body = {key: value for key, value in given.items() if value is not None}
    data = api.fetch("PATCH", job_path(job_id), json=body)
    return parsed(JobRecord, data, api.url), waiting_of(data)


def pending(
    api: ApiClient, owner: str | None = None, queue: str | None = None, limit: int = 100
) -> PendingPage:
    """GET /queue: the pending jobs in admission order (only one's own where the API
    shows owners only theirs)."""
    params = {"owner": owner, "queue": queue, "limit": limit}
    return parsed(PendingPage, api.fetch("GET", "/queue", params=params), api.url)


def quota(api: ApiClient, owner: str) -> OwnerQuota:
    """GET /users/{name}/quota (admins)."""
    data = api.fetch("GET", _quota_path(owner))
    return parsed(OwnerQuota, data, api.url)


def change_quota(api: ApiClient, owner: str, fields: dict[str, Any]) -> OwnerQuota:
    """PATCH /users/{name}/quota (admins): ``fields`` merged in, a None one reset."""
    data = api.fetch("PATCH", _quota_path(owner), json=fields)
    return parsed(OwnerQuota, data, api.url)


def _quota_path(owner: str) -> str:
    return f"/users/{quote(owner, safe='')}/quota"
