"""The scheduler's routes: a pending job's priority (``PATCH /train/{id}``), the pending
queue in admission order (``GET /queue``) and each owner's quota (``/users/{name}/quota``).

Who may do what is :mod:`trainq.users.access`'s table: a job's owner or an admin may
change its priority, never above the caller's highest (their policy's, else
``TRAINQ_DEFAULT_MAX_PRIORITY``) unless an admin; only an admin marks a job
non-preemptible or sets a quota. Any user reads the queue (their own jobs only when jobs
are visible to their owners only; places stay those of the whole queue).
"""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from trainq import client
from trainq.api.auth import Caller, job_access, scheduling_access
from trainq.api.models import (
    NOT_FOUND,
    UNAUTHORIZED,
    JobView,
    PendingQueue,
    Problem,
    QueuedJob,
    Quota,
    Responses,
)
from trainq.api.routes.jobs import JobIdPath, view
from trainq.client import scheduling
from trainq.config import USER_NAME_PATTERN, Settings
from trainq.jobs.spec import Priority
from trainq.scheduler.policy import OwnerPolicy
from trainq.users.access import Action, decide
from trainq.users.model import Principal

OwnerName = Annotated[
    str, Path(pattern=USER_NAME_PATTERN, description="The owner (a user, or a direct client)")
]


class JobChange(BaseModel):
    """What to change of a job: its priority (pending jobs only), whether it may be
    preempted (admins only)."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = Field(default=None, description="low | normal | high")
    preemptible: StrictBool | None = Field(
        default=None, description="false: no higher-priority job makes it yield (admins)"
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.priority is None and self.preemptible is None:
            raise ValueError("nothing to change: give priority or preemptible")
        return self


class QuotaChange(BaseModel):
    """The policy fields to change; a field sent as null goes back to the default."""

    model_config = ConfigDict(extra="forbid", strict=True)

    gpus: int | None = Field(default=None, ge=0, le=100_000, description="Most GPUs at once")
    jobs: int | None = Field(default=None, ge=0, le=100_000, description="Most jobs at once")
    queued: int | None = Field(default=None, ge=0, le=10_000_000, description="Most queued")
    max_priority: Priority | None = Field(default=None, description="Highest priority")
    weight: float | None = Field(
        default=None, gt=0, le=1000, allow_inf_nan=False, description="Fair-share weight"
    )

    @field_validator("gpus", "jobs", "queued", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        """JSON Schema's integer: 2.0 is 2 (no booleans, no strings, no 2.5)."""
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


_BODY: Responses = {
    400: {"model": Problem, "description": "The body is not JSON"},
    413: {"model": Problem, "description": "Body over the size limit"},
}
_ADMINS: Responses = {
    **UNAUTHORIZED,
    403: {"model": Problem, "description": "The caller is not an admin"},
}


def router(settings: Settings) -> APIRouter:
    api = APIRouter()

    @api.patch(
        "/train/{job_id}",
        response_model=JobView,
        responses={
            **UNAUTHORIZED,
            **NOT_FOUND,
            **_BODY,
            403: {
                "model": Problem,
                "description": "Not the job's owner nor an admin; a priority above the "
                "caller's highest; or non-preemptible asked by someone not an admin",
            },
            409: {"model": Problem, "description": "Not pending any more, or finished"},
        },
        tags=["jobs"],
        summary="Change a pending job's priority, or whether it may be preempted",
    )
    def change_job(job_id: JobIdPath, body: JobChange, principal: Caller) -> JobView:
        """A new priority reorders the pending queue (`409` once the job was admitted);
        `preemptible` applies to any job not finished (admins only)."""
        job_access(principal, Action.PRIORITY, client.get_job(job_id), settings)
        scheduling_access(principal, body.priority, body.preemptible, settings)
        record = client.change_job(job_id, priority=body.priority, preemptible=body.preemptible)
        return view(record, waiting=client.waiting_reason(record, settings))

    @api.get(
        "/queue",
        response_model=PendingQueue,
        responses=UNAUTHORIZED,
        tags=["cluster"],
        summary="Pending jobs in the order they will be admitted, each with its reason",
    )
    def pending_queue(
        principal: Caller,
        owner: Annotated[
            str | None, Query(pattern=USER_NAME_PATTERN, description="Only this owner's jobs")
        ] = None,
        queue: Annotated[
            str | None, Query(min_length=1, max_length=300, description="Only this queue")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
    ) -> PendingQueue:
        """Places are those of the whole queue, whatever the filters; when jobs are
        visible to their owners only, a user sees only their own."""
        if settings.jobs_visible == "owner" and not principal.admin:
            if owner not in (None, principal.name):
                return PendingQueue(jobs=[], total=0)
            owner = principal.name
        found = scheduling.pending_page(owner, queue, limit, settings)
        jobs = [QueuedJob.model_validate(row) for row in found.rows()]
        return PendingQueue(jobs=jobs, total=found.total)

    @api.get(
        "/users/{name}/quota",
        response_model=Quota,
        responses=_ADMINS,
        tags=["users"],
        summary="An owner's quotas, highest priority and fair-share weight",
    )
    def get_quota(principal: Caller, name: OwnerName) -> Quota:
        """Any owner's, user account or not; an owner nobody set one for has the defaults."""
        admin_only(principal)
        return quota_of(name, scheduling.get_policy(name, settings), settings)

    @api.patch(
        "/users/{name}/quota",
        response_model=Quota,
        responses={**_ADMINS, **_BODY},
        tags=["users"],
        summary="Change an owner's quotas, highest priority or fair-share weight",
    )
    def change_quota(principal: Caller, name: OwnerName, body: QuotaChange) -> Quota:
        """Merges the fields sent into the owner's policy (null: back to the default);
        the scheduler applies it at its next pass."""
        admin_only(principal)
        changes = {field: getattr(body, field) for field in body.model_fields_set}
        return quota_of(name, scheduling.change_policy(name, changes, settings), settings)

    return api


def admin_only(principal: Principal) -> None:
    if decide(principal, Action.MANAGE_USERS) != "allowed":
        raise HTTPException(403, f"only an admin may manage quotas: {principal.name} is not one")


def quota_of(owner: str, policy: OwnerPolicy, settings: Settings) -> Quota:
    return Quota(
        owner=owner,
        **policy.model_dump(),
        default_max_priority=settings.default_max_priority,
        default_queued=settings.max_queued_per_user or None,
    )
