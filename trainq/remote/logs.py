"""A job's output through the API: ``format=jsonl`` to read it, server-sent events to
follow it, and a search across jobs.

The API applies ``attempt`` and ``tail``; ``since`` and ``grep`` are applied here, on
each line's ``ts`` and text, so the lines shown are the ones
:func:`trainq.logs.reader.job_lines` shows next to Redis. Where the lines came from
arrives in the answer's headers and fills the same :class:`LogSources`.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from trainq.errors import JobNotFound, TrainqError
from trainq.jobs.record import JobRecord
from trainq.logs.joining import LogSources
from trainq.logs.reader import LogQuery
from trainq.logs.stream import LogLine
from trainq.remote.http import ApiClient, job_path

# The API's log headers (trainq.api.routes.jobs): where the lines came from, how many
# no copy holds, and why the archives could not be read.
SOURCES_HEADER = "X-Trainq-Log-Sources"
MISSING_HEADER = "X-Trainq-Log-Missing"
ARCHIVE_ERROR_HEADER = "X-Trainq-Log-Archive-Error"
_MISSING = re.compile(r"attempt (\d+): (\d+)")

# Told, in a clause, that the artifact store's archives could not be read.
ArchiveFailed = Callable[[str], None]


def job_lines(
    api: ApiClient, job_id: str, query: LogQuery, sources: LogSources, failed: ArchiveFailed
) -> Iterator[LogLine]:
    """The job's lines that ``query`` keeps, oldest first (only the last ``tail``)."""
    here = _filters_here(query)
    params = {"format": "jsonl", "attempt": query.attempt, "tail": None if here else query.tail}
    with api.stream("GET", f"{job_path(job_id)}/logs", params=params) as response:
        _note_headers(response, sources, failed)
        kept = (line for line in _json_lines(response, job_id, api.url) if query.keeps(line))
        if here and query.tail is not None:
            yield from deque(kept, maxlen=query.tail)
        else:
            yield from kept


# A follow gives up (exit 3, naming the API) after this long without a byte: the API
# sends a keep-alive every 15 s while the job is quiet, so only a dead link is this quiet.
FOLLOW_SILENCE_S = 60.0


def follow(
    api: ApiClient, job_id: str, query: LogQuery, sources: LogSources, failed: ArchiveFailed
) -> Iterator[LogLine]:
    """The job's lines as they come, until the API's ``end`` event (the job is final)."""
    here = _filters_here(query)
    skip = 0
    if here and query.tail is not None:
        # The events do not say where the backlog ends: read it once for its last
        # ``tail`` kept lines, then skip as many lines of the follow as it had.
        last: deque[LogLine] = deque(maxlen=query.tail)
        whole = LogQuery(attempt=query.attempt)
        for line in job_lines(api, job_id, whole, sources, failed):
            skip += 1
            if query.keeps(line):
                last.append(line)
        yield from last
    params = {"follow": "true", "attempt": query.attempt, "tail": None if here else query.tail}
    path = f"{job_path(job_id)}/logs"
    with api.stream("GET", path, params=params, read_timeout_s=FOLLOW_SILENCE_S) as response:
        if not skip:
            _note_headers(response, sources, failed)
        for line in _events(response, job_id, api):
            if skip:
                skip -= 1
            elif query.keeps(line):
                yield line


def search(
    api: ApiClient, records: Iterator[JobRecord], pattern: re.Pattern[str], failed: ArchiveFailed
) -> Iterator[LogLine]:
    """Every line of every job that matches ``pattern``, job by job; a store that
    could not be read is told once."""
    told: list[str] = []

    def once(clause: str) -> None:
        if not told:
            told.append(clause)
            failed(clause)

    query = LogQuery(grep=pattern)
    for record in records:
        try:
            yield from job_lines(api, record.id, query, LogSources(), once)
        except JobNotFound:
            continue  # removed since the page was read


def _filters_here(query: LogQuery) -> bool:
    return query.since is not None or query.grep is not None


def _note_headers(response: httpx.Response, sources: LogSources, failed: ArchiveFailed) -> None:
    for source in response.headers.get(SOURCES_HEADER, "").split(", "):
        if source.strip():
            sources.note(source.strip())
    for attempt, count in _MISSING.findall(response.headers.get(MISSING_HEADER, "")):
        sources.missing[int(attempt)] = int(count)
    error = response.headers.get(ARCHIVE_ERROR_HEADER)
    if error:
        failed(f"the artifact store of the API could not be read ({error})")


def _json_lines(response: httpx.Response, job_id: str, url: str) -> Iterator[LogLine]:
    for raw in response.iter_lines():
        if raw.strip():
            yield _line(raw, job_id, url)


def _events(response: httpx.Response, job_id: str, api: ApiClient) -> Iterator[LogLine]:
    """The ``line`` events of a server-sent event stream, until its ``end`` event."""
    event, data = "message", list[str]()
    for raw in response.iter_lines():
        if not raw:  # an event is complete
            if data and event == "line":
                yield _line("\n".join(data), job_id, api.url)
            elif data and event == "end":
                return
            event, data = "message", []
            continue
        name, _, value = raw.partition(":")
        if name == "event":
            event = value.removeprefix(" ")
        elif name == "data":
            data.append(value.removeprefix(" "))
    raise api.unreachable("the log stream ended before the job did")


def _line(text: str, job_id: str, url: str) -> LogLine:
    try:
        data: Any = json.loads(text)
        return LogLine(job_id, int(data["attempt"]), float(data["ts"]), str(data["line"]))
    except (ValueError, TypeError, KeyError):
        raise TrainqError(f"the API at {url} sent a log line trainq cannot read") from None
