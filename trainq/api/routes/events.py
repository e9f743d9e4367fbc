"""``/train/{id}/events``: a job's page follows the job (:mod:`trainq.api.feeds`)."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from trainq import client
from trainq.api.auth import Caller, job_access
from trainq.api.feeds import Feeds
from trainq.api.models import NOT_FOUND, UNAUTHORIZED
from trainq.api.routes.jobs import view
from trainq.api.routes.logs import archived
from trainq.client.watching import JobWatch
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.logs import reader
from trainq.users.access import Action

JobIdPath = Annotated[str, Path(min_length=1, max_length=200, description="The job id")]
# The console's lines a page is sent first, and at most per step (console.js shows them).
CONSOLE_LINES = 500


def feeds(settings: Settings) -> Feeds:
    """This process's feeds of jobs to their pages."""

    def watch(job_id: str) -> JobWatch:
        archive = reader.of_job(reader.failing_soft(archived, lambda _: None), job_id)
        return JobWatch(job_id, settings, CONSOLE_LINES, archive=archive)

    def render(record: JobRecord, waiting: str | None) -> str:
        return view(record, waiting).model_dump_json()

    return Feeds(watch, render, settings.metric_series_max_points)


def router(settings: Settings, following: Feeds) -> APIRouter:
    api = APIRouter(prefix="/train", tags=["jobs"])

    @api.get(
        "/{job_id}/events",
        responses={
            **UNAUTHORIZED,
            **NOT_FOUND,
            200: {
                "content": {"text/event-stream": {}},
                "description": "Server-sent events: snapshot, then job, points, lines, "
                "problem, end",
            },
        },
        response_class=StreamingResponse,
        summary="Follow a job: its record, metric points and console, as they change",
    )
    async def job_events(job_id: JobIdPath, principal: Caller) -> StreamingResponse:
        """What the job's page shows, pushed: first a `snapshot` event (`{"job": <as GET
        /train/{id}>, "points": [<as GET /train/{id}/metrics>], "lines": [{"attempt",
        "ts", "line"}, ...]}`: the console's last 500 lines), then `job` (the record,
        when it changed), `points` and `lines` (new ones), `problem` (`{"detail"}` while
        Redis does not answer; `null` once it does) and, once the job has ended, `end`
        (`{"status"}`) before the stream closes. One reader per job in the server,
        however many follow it."""

        def check() -> None:  # 404 (or 403) before any streaming starts
            job_access(principal, Action.READ, client.get_job(job_id), settings)

        await to_thread.run_sync(check)
        return StreamingResponse(
            following.follow(job_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return api
