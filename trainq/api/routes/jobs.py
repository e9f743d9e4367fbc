"""``/train``: submit, read, list, cancel and follow jobs (the CLI's client functions)."""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import IO, Annotated

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query, Response
from fastapi.responses import StreamingResponse

from trainq import client, connections
from trainq.api.auth import TokenCheck
from trainq.api.models import (
    NOT_FOUND,
    SPEC_EXAMPLES,
    UNAUTHORIZED,
    JobAccepted,
    JobList,
    JobView,
    Problem,
)
from trainq.artifacts.logs import archived_lines
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.logs import reader
from trainq.logs.joining import LogSources
from trainq.logs.stream import LogLine

JobIdPath = Annotated[str, Path(min_length=1, max_length=200, description="The job id")]

# Where a log answer's lines came from (comma-separated: "archive attempt 1, stream"),
# how many no copy holds ("attempt 1: 40, ..."), and why the archives could not be read.
SOURCES_HEADER = "X-Trainq-Log-Sources"
MISSING_HEADER = "X-Trainq-Log-Missing"
ARCHIVE_ERROR_HEADER = "X-Trainq-Log-Archive-Error"
# A joined backlog is spooled in memory up to this size, then in a temporary file.
_SPOOL_BYTES = 8 * 1024**2


# encode_cursor's shape: "<created_at>:<job id>".
CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,20})?:.{1,250}$"


def router(check: TokenCheck, settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/train", tags=["jobs"], dependencies=[Depends(check)])

    @api.post(
        "",
        status_code=202,
        response_model=JobAccepted,
        responses={
            **UNAUTHORIZED,
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
        """Validate, record the job as queued, and queue it (`202`, `Location`)."""
        values = spec.model_dump(mode="json", exclude_unset=True)
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
        job_id = client.submit(values, settings=settings, job_id=new_id, ignore_result=True)
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
    )
    def list_jobs(
        status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
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
        try:
            page = client.list_jobs(status=status, limit=limit, cursor=cursor)
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
    def get_job(job_id: JobIdPath) -> JobView:
        record = client.get_job(job_id)
        return view(record, waiting=client.waiting_reason(record, settings))

    @api.delete(
        "/{job_id}",
        status_code=202,
        response_model=JobView,
        responses={
            **UNAUTHORIZED,
            **NOT_FOUND,
            200: {"model": JobView, "description": "Cancelled before it started"},
            409: {"model": Problem, "description": "The job had already finished"},
        },
        summary="Cancel a job",
    )
    def cancel_job(job_id: JobIdPath, response: Response) -> JobView:
        """Cooperative: a queued job never starts (`200`); a running job's container is
        stopped first and the job is then recorded `cancelled` (`202`)."""
        record = client.cancel(job_id)
        if record.status.is_terminal:
            response.status_code = 200
        return view(record)

    @api.get(
        "/{job_id}/logs",
        responses={
            **UNAUTHORIZED,
            **NOT_FOUND,
            200: {
                "content": {"text/plain": {}, "text/event-stream": {}},
                "description": "The job's output; with follow=true, server-sent events",
                "headers": {
                    SOURCES_HEADER: {
                        "description": "Where the lines came from, comma-separated: "
                        "stream, local file <path>, archive attempt <n>",
                        "schema": {"type": "string"},
                    },
                    MISSING_HEADER: {
                        "description": "Lines no copy holds (trimmed from the stream, in no "
                        "log file nor archive), per attempt: attempt 1: 40, ...",
                        "schema": {"type": "string"},
                    },
                    ARCHIVE_ERROR_HEADER: {
                        "description": "Why the archived logs could not be read",
                        "schema": {"type": "string"},
                    },
                },
            },
        },
        response_class=StreamingResponse,
        summary="A job's output, or follow it live",
    )
    def job_logs(
        job_id: JobIdPath,
        follow: Annotated[bool, Query(description="Server-sent events until the job ends")] = False,
        attempt: Annotated[
            int | None, Query(ge=1, le=1000, description="Only this attempt")
        ] = None,
        tail: Annotated[
            int | None, Query(ge=0, le=1_000_000, description="Only the last N")
        ] = None,
    ) -> StreamingResponse:
        record = client.get_job(job_id)  # 404 before any streaming starts
        stream = connections.log_stream(settings)
        query = reader.LogQuery(attempt=attempt, tail=tail)
        sources, failures = LogSources(), list[Exception]()
        archive = reader.of_job(reader.failing_soft(_archived, failures.append), job_id)
        # The headers say where the lines came from, known once they are read: the
        # backlog (stream, local file, archives: blocking I/O, run in the threadpool as
        # this route is a plain def) is read into a spool here, and sent from there.
        past = reader.backlog(record, stream, query, archive, sources)
        if not follow:
            spooled = _spool(_text(past.lines))
            return StreamingResponse(
                _unspool(spooled),
                media_type="text/plain; charset=utf-8",
                headers=_log_headers(sources, failures),
            )
        spooled = _spool(_line_events(past.lines))
        lines = reader.live(
            job_id,
            stream,
            query,
            lambda: client.get_job(job_id).status.is_terminal,
            past.after,
            read=past.read,
        )
        return StreamingResponse(
            chain(_unspool(spooled), _line_events(lines), _end_event(job_id)),
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **_log_headers(sources, failures),
            },
        )

    return api


def view(record: JobRecord, waiting: str | None = None) -> JobView:
    return JobView(**dict(record), waiting=waiting)


def _text(lines: Iterator[LogLine]) -> Iterator[str]:
    for line in lines:
        yield line.line + "\n"


def _line_events(lines: Iterator[LogLine]) -> Iterator[str]:
    """One ``line`` event per output line."""
    for line in lines:
        data = json.dumps({"attempt": line.attempt, "ts": line.ts, "line": line.line})
        yield f"event: line\ndata: {data}\n\n"


def _end_event(job_id: str) -> Iterator[str]:
    """The ``end`` event, with the job's final status."""
    status = client.get_job(job_id).status
    yield f"event: end\ndata: {json.dumps({'status': status.value})}\n\n"


def _archived(job_id: str, attempt: int) -> Iterator[str] | None:
    return archived_lines(connections.artifact_store(), job_id, attempt)


def _log_headers(sources: LogSources, failures: list[Exception]) -> dict[str, str]:
    headers = {SOURCES_HEADER: ", ".join(sources.used)}
    if sources.missing:
        counts = sorted(sources.missing.items())
        headers[MISSING_HEADER] = ", ".join(f"attempt {a}: {n}" for a, n in counts)
    if failures:
        headers[ARCHIVE_ERROR_HEADER] = _header_text(str(failures[0]))
    return headers


def _header_text(text: str) -> str:
    """``text`` as a header value may hold it: one line of ASCII."""
    return " ".join(text.split()).encode("ascii", "replace").decode("ascii")[:500]


def _spool(chunks: Iterator[str]) -> IO[bytes]:
    """The chunks, written out; :func:`_unspool` sends them and closes the spool."""
    spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    try:
        for chunk in chunks:
            spooled.write(chunk.encode("utf-8"))
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled


def _unspool(spooled: IO[bytes]) -> Iterator[bytes]:
    with spooled:
        while block := spooled.read(64 * 1024):
            yield block
