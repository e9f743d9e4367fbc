"""``/train``: submit, read, list and cancel jobs (their logs: :mod:`trainq.api.routes.logs`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query, Response

from trainq import client
from trainq.api.auth import Caller, job_access, scheduling_access
from trainq.api.models import (
    FORBIDDEN,
    NOT_FOUND,
    QUOTA,
    SPEC_EXAMPLES,
    UNAUTHORIZED,
    JobAccepted,
    JobList,
    JobView,
    Problem,
)
from trainq.config import USER_NAME_PATTERN, Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.scheduler.policy import RANK
from trainq.store.name_filter import NAME_SCAN_MAX, NAME_TEXT_MAX_LENGTH, NAME_TEXT_PATTERN
from trainq.users.access import Action
from trainq.users.model import Principal

JobIdPath = Annotated[str, Path(min_length=1, max_length=200, description="The job id")]

# encode_cursor's shape: "<created_at>:<job id>".
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,20})?:.{1,250}$"
LIST_DESCRIPTION = f"""Newest first. When jobs are visible to their owners only, a
user's list holds only their own jobs (an admin's, everyone's).

With `name`, one request examines at most {NAME_SCAN_MAX:,} jobs in the list's order, so
a page may hold fewer than `limit` jobs (none, even) while `next_cursor` is not null:
follow `next_cursor` until it is null to see every match. Without `name`, only the
last page holds fewer than `limit`."""


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/train", tags=["jobs"])

    def visible(job_id: str, principal: Principal, action: Action = Action.READ) -> JobRecord:
        """The job, if ``principal`` may take ``action`` on it (403, or 404 if hidden)."""
        return job_access(principal, action, client.get_job(job_id), settings)

    @api.post(
        "",
        status_code=202,
        response_model=JobAccepted,
        responses={
            **UNAUTHORIZED,
            **QUOTA,
            403: {
                "model": Problem,
                "description": "A priority above the caller's highest, or non-preemptible "
                "asked by someone not an admin",
            },
            200: {"model": JobAccepted, "description": "Same Idempotency-Key: the first job"},
            400: {"model": Problem, "description": "The body is not JSON"},
            409: {"model": Problem, "description": "Two different idempotency keys"},
            413: {"model": Problem, "description": "Body over the size limit"},
        },
        summary="Submit a training job",
    )
    def submit(
        spec: Annotated[JobSpec, Body(openapi_examples=SPEC_EXAMPLES)],
        response: Response,
        principal: Caller,
        idempotency_key: Annotated[
            str | None,
            Header(
                min_length=1,
                max_length=255,
                pattern=r"^[\x21-\x7e]+$",
                description="Submitting again with this key returns the first job",
            ),
        ] = None,
    ) -> JobAccepted:
        """Validate, record the job as queued, and queue it (`202`, `Location`). The
        token's user owns it; over the owner's queued-jobs cap it is refused (`429`).
        Only an admin may ask for a priority above the owner's highest, or mark a job
        non-preemptible (`403`); without a priority, a job gets `normal`, or the
        owner's highest if that is lower."""
        values = spec.model_dump(mode="json", exclude_unset=True)
        asked = spec.priority if "priority" in values else None
        highest = scheduling_access(principal, asked, spec.preemptible, settings)
        if asked is None and highest is not None and RANK[highest] < RANK[spec.priority]:
            values["priority"] = highest
        if idempotency_key is not None:
            if spec.idempotency_key not in (None, idempotency_key):
                raise HTTPException(
                    409, "the body's idempotency_key differs from the Idempotency-Key header"
                )
            values["idempotency_key"] = idempotency_key
        new_id = str(uuid.uuid4())
        # ignore_result: the job's result is in its record (GET /train/{id}). Without it
        # Celery's Redis backend subscribes this process to every job's result channel
        # (for AsyncResult.get(), which the API never calls): a subscription per submit,
        # never dropped, and a quarter of a submit's time.
        job_id = client.submit(
            values, settings=settings, job_id=new_id, owner=principal.name, ignore_result=True
        )
        url = f"/train/{job_id}"
        response.headers["Location"] = url
        if job_id == new_id:
            return JobAccepted(id=job_id, status=JobStatus.QUEUED, url=url)
        response.status_code = 200  # the key's first job, in whatever status it is now
        return JobAccepted(id=job_id, status=client.get_job(job_id).status, url=url)

    @api.get(
        "",
        response_model=JobList,
        responses=UNAUTHORIZED,
        summary="List jobs, newest first",
        description=LIST_DESCRIPTION,
    )
    def list_jobs(
        principal: Caller,
        status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
        owner: Annotated[
            str | None,
            Query(pattern=USER_NAME_PATTERN, description="Only jobs this user submitted"),
        ] = None,
        name: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=NAME_TEXT_MAX_LENGTH,
                pattern=NAME_TEXT_PATTERN,
                description="Only jobs whose name contains this text, ignoring case (the "
                "characters a job name may hold: letters, digits, `_`, `.`, `-`)",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500, description="Jobs per page")] = 50,
        cursor: Annotated[
            str | None,
            Query(
                max_length=300,
                pattern=CURSOR_PATTERN,
                description="next_cursor of the page before",
            ),
        ] = None,
    ) -> JobList:
        """Newest first; :data:`LIST_DESCRIPTION` (the OpenAPI description) says more."""
        if settings.jobs_visible == "owner" and not principal.admin:
            if owner not in (None, principal.name):
                return JobList(jobs=[], next_cursor=None)
            owner = principal.name
        try:
            page = client.list_jobs(
                status=status, limit=limit, cursor=cursor, owner=owner, name=name
            )
        except ValueError as exc:
            raise HTTPException(
                422, [{"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}]
            ) from None
        return JobList(
            jobs=[view(r) for r in page.records],
            next_cursor=page.next_cursor,
        )

    @api.get(
        "/{job_id}",
        response_model=JobView,
        responses={**UNAUTHORIZED, **NOT_FOUND},
        summary="One job: status, progress, attempts, error",
    )
    def get_job(job_id: JobIdPath, principal: Caller) -> JobView:
        record = visible(job_id, principal)
        return view(record, waiting=client.waiting_reason(record, settings))

    @api.delete(
        "/{job_id}",
        status_code=202,
        response_model=JobView,
        responses={
            **UNAUTHORIZED,
            **NOT_FOUND,
            **FORBIDDEN,
            200: {"model": JobView, "description": "Cancelled before it started"},
            409: {"model": Problem, "description": "The job had already finished"},
        },
        summary="Cancel a job",
    )
    def cancel_job(job_id: JobIdPath, response: Response, principal: Caller) -> JobView:
        """Cooperative: a queued job never starts (`200`); a running job's container is
        stopped first and the job is then recorded `cancelled` (`202`). Only the job's
        owner or an admin may cancel it (`403`)."""
        visible(job_id, principal, Action.CANCEL)
        record = client.cancel(job_id)
        if record.status.is_terminal:
            response.status_code = 200
        return view(record)

    return api


def view(record: JobRecord, waiting: str | None = None) -> JobView:
    return JobView(**dict(record), waiting=waiting)
