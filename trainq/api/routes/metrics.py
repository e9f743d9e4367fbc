"""``/train/{id}/metrics``: a job's metric series, for its curves (:mod:`trainq.logs.series`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from trainq import client, connections
from trainq.api.auth import Caller, job_access
from trainq.api.models import NOT_FOUND, UNAUTHORIZED, MetricPoints
from trainq.config import Settings
from trainq.logs.series import ENTRY_ID
from trainq.users.access import Action

JobIdPath = Annotated[str, Path(min_length=1, max_length=200, description="The job id")]
After = Annotated[
    str | None,
    Query(
        pattern=f"^{ENTRY_ID.pattern}$",
        description="Only the points after this one (a previous answer's last)",
    ),
]


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/train", tags=["jobs"])

    @api.get(
        "/{job_id}/metrics",
        response_model=MetricPoints,
        responses={**UNAUTHORIZED, **NOT_FOUND},
        summary="A job's metric series: the numbers of its progress lines",
    )
    def job_metrics(job_id: JobIdPath, principal: Caller, after: After = None) -> MetricPoints:
        job_access(principal, Action.READ, client.get_job(job_id), settings)
        found = connections.metric_series(settings).read(job_id, after)
        return MetricPoints(points=found.points, last=found.last)

    return api
