"""``/train/{id}/logs``: a job's output from any host, all of it or followed live.

The lines come from the job's Redis stream, its log file on this host and its archives
in the artifact store, joined; headers say which (and how many no copy holds).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from trainq import client, connections
from trainq.api.auth import Caller, job_access
from trainq.api.models import NOT_FOUND, UNAUTHORIZED
from trainq.artifacts.logs import archived_lines
from trainq.config import Settings
from trainq.logs import reader
from trainq.logs.joining import LogSources
from trainq.logs.stream import LogLine
from trainq.users.access import Action

JobIdPath = Annotated[str, Path(min_length=1, max_length=200, description="The job id")]

# Where a log answer's lines came from (comma-separated: "archive attempt 1, stream"),
# how many no copy holds ("attempt 1: 40, ..."), and why the archives could not be read.
SOURCES_HEADER = "X-Trainq-Log-Sources"
MISSING_HEADER = "X-Trainq-Log-Missing"
ARCHIVE_ERROR_HEADER = "X-Trainq-Log-Archive-Error"
# A followed job that prints nothing gets an SSE comment this often (the remote CLI
# gives up on a follow silent for several of these: trainq.remote.logs).
KEEPALIVE_S = 15.0
# A quiet follow reads its stream again after this long, on the event loop.
FOLLOW_POLL_S = 0.5
_BATCH_LINES = 1000  # lines a follow sends in one write at most
# A joined backlog is spooled in memory up to this size, then in a temporary file.
_SPOOL_BYTES = 8 * 1024**2


def router(settings: Settings) -> APIRouter:
    api = APIRouter(prefix="/train", tags=["jobs"])

    @api.get(
        "/{job_id}/logs",
        responses={
            **UNAUTHORIZED,
            **NOT_FOUND,
            200: {
                "content": {"text/plain": {}, "application/jsonl": {}, "text/event-stream": {}},
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
        principal: Caller,
        follow: Annotated[bool, Query(description="Server-sent events until the job ends")] = False,
        attempt: Annotated[
            int | None, Query(ge=1, le=1000, description="Only this attempt")
        ] = None,
        tail: Annotated[
            int | None, Query(ge=0, le=1_000_000, description="Only the last N")
        ] = None,
        format_: Annotated[
            Literal["text", "jsonl"],
            Query(
                alias="format",
                description="text: the lines; jsonl: one {attempt, ts, line} object per "
                "line (without follow)",
            ),
        ] = "text",
    ) -> StreamingResponse:
        # 404 (or 403) before any streaming starts
        record = job_access(principal, Action.READ, client.get_job(job_id), settings)
        stream = connections.log_stream(settings)
        query = reader.LogQuery(attempt=attempt, tail=tail)
        sources, failures = LogSources(), list[Exception]()
        archive = reader.of_job(reader.failing_soft(archived, failures.append), job_id)
        # The headers say where the lines came from, known once they are read: the
        # backlog (stream, local file, archives: blocking I/O, run in the threadpool as
        # this route is a plain def) is read into a spool here, and sent from there.
        past = reader.backlog(record, stream, query, archive, sources)
        if not follow:
            as_json = format_ == "jsonl"
            spooled = _spool(_json_lines(past.lines) if as_json else _text(past.lines))
            return StreamingResponse(
                _unspool(spooled),
                media_type="application/jsonl" if as_json else "text/plain; charset=utf-8",
                headers=_log_headers(sources, failures),
            )
        spooled = _spool(_line_events(past.lines))
        lines = reader.live_or_idle(
            job_id,
            stream,
            query,
            lambda: client.get_job(job_id).status.is_terminal,
            past.after,
            block_ms=0,  # never waits in Redis: a quiet follow holds no thread
            read=past.read,
        )
        return StreamingResponse(
            _followed(spooled, lines, job_id),
            media_type="text/event-stream",
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                **_log_headers(sources, failures),
            },
        )

    return api


def _text(lines: Iterator[LogLine]) -> Iterator[str]:
    for line in lines:
        yield line.line + "\n"


def _json_lines(lines: Iterator[LogLine]) -> Iterator[str]:
    for line in lines:
        yield json.dumps({"attempt": line.attempt, "ts": line.ts, "line": line.line}) + "\n"


def _line_events(lines: Iterator[LogLine]) -> Iterator[str]:
    """One ``line`` event per output line."""
    for line in lines:
        data = json.dumps({"attempt": line.attempt, "ts": line.ts, "line": line.line})
        yield f"event: line\ndata: {data}\n\n"


async def _followed(
    spooled: IO[bytes], lines: Iterator[LogLine | None], job_id: str
) -> AsyncIterator[bytes | str]:
    """The backlog's events, then the live ones, then the end event. Each read of the
    stream runs in the threadpool and returns at once; between the reads of a quiet job
    the follow waits on the event loop, holding no thread (every sync route shares the
    threadpool with it)."""
    for block in _unspool(spooled):
        yield block
    async for text in _live_events(lines):
        yield text
    yield await to_thread.run_sync(lambda: "".join(_end_event(job_id)))


async def _live_events(lines: Iterator[LogLine | None]) -> AsyncIterator[str]:
    """The lines' events as they come, and an SSE comment after ``KEEPALIVE_S`` without
    one: a client may then give up on a connection that stays silent longer."""
    quiet_since = time.monotonic()
    while (batch := await to_thread.run_sync(_batch, lines)) is not None:
        if batch:
            yield "".join(_line_events(iter(batch)))
            quiet_since = time.monotonic()
            continue
        if time.monotonic() - quiet_since >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(FOLLOW_POLL_S)


def _batch(lines: Iterator[LogLine | None]) -> list[LogLine] | None:
    """The lines ``lines`` holds now (up to its next idle mark, at most
    ``_BATCH_LINES``); None once it has ended."""
    batch: list[LogLine] = []
    for line in lines:
        if line is None:
            return batch
        batch.append(line)
        if len(batch) >= _BATCH_LINES:
            return batch
    return batch or None


def _end_event(job_id: str) -> Iterator[str]:
    """The ``end`` event, with the job's final status."""
    status = client.get_job(job_id).status
    yield f"event: end\ndata: {json.dumps({'status': status.value})}\n\n"


def archived(job_id: str, attempt: int) -> Iterator[str] | None:
    """The archived lines of a job's attempt (None: it has none)."""
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
