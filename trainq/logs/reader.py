"""Reading job logs back: one job's lines, a live follow, a search across jobs.

Lines come from the job's Redis stream, which any host can read. When the stream's
cap has trimmed a job's oldest lines, each attempt the stream no longer holds from its
first line is joined from older copies: first the job's log file when it is on this
host (every line up to its size cap), then the attempt's archive in the artifact store
(what the file held at the archive's last pass) for the lines the file lacks, then the
stream's lines past those, by their index within the attempt. Every line comes once,
in order; :class:`LogSources` says where they came from and how many no copy holds.
The archive is fetched only when the stream and the file do not hold the attempt:
each fetch is a round trip to the store.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ParamSpec

from trainq.errors import TrainqError
from trainq.jobs.record import JobRecord
from trainq.logs.joining import Archive, LogSources, join, noted
from trainq.logs.retention import open_log
from trainq.logs.stream import LINES_PER_ENTRY, LogLine, LogStream

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# An attempt's archived log (joining.Archive), by job id and attempt number (a search).
JobArchive = Callable[[str, int], Iterator[str] | None]
_Where = ParamSpec("_Where")
# What reading an archive may raise: the artifact store's errors (trainq's own, naming
# the store), a file system's, a broken gzip.
ARCHIVE_ERRORS: tuple[type[Exception], ...] = (TrainqError, OSError, EOFError, zlib.error)


def no_archive(attempt: int) -> None:
    """No artifact store: the stream and the local file only."""
    return None


def failing_soft(
    archive: Callable[_Where, Iterator[str] | None],
    failed: Callable[[Exception], None],
    errors: tuple[type[Exception], ...] = ARCHIVE_ERRORS,
) -> Callable[_Where, Iterator[str] | None]:
    """``archive`` (an :data:`Archive` or a :data:`JobArchive`), where a failure (one of
    ``errors``, when asked or while read) counts as no archive, or the end of it: told
    to ``failed`` once, and the store is not asked again."""
    broken: list[Exception] = []

    def broke(exc: Exception) -> None:
        broken.append(exc)
        failed(exc)

    def until_broken(texts: Iterator[str]) -> Iterator[str]:
        try:
            yield from texts
        except errors as exc:
            broke(exc)

    def soft(*args: _Where.args, **kwargs: _Where.kwargs) -> Iterator[str] | None:
        if broken:
            return None
        try:
            texts = archive(*args, **kwargs)
        except errors as exc:
            broke(exc)
            return None
        return None if texts is None else until_broken(texts)

    return soft


@dataclass(frozen=True)
class Backlog:
    lines: Iterator[LogLine]  # what the query keeps, oldest first
    after: str  # the last stream entry read ("0-0": none); a follow goes on from it
    # Each attempt's lines read so far (once ``lines`` is): a local file may be ahead of
    # the stream, and a follow skips what it gave.
    read: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LogQuery:
    attempt: int | None = None
    since: float | None = None  # Unix seconds
    tail: int | None = None
    grep: re.Pattern[str] | None = None

    def keeps(self, line: LogLine) -> bool:
        return (
            (self.attempt is None or line.attempt == self.attempt)
            and (self.since is None or line.ts >= self.since)
            and (self.grep is None or self.grep.search(line.line) is not None)
        )


def parse_since(text: str, now: float | None = None) -> float:
    """``10m``, ``2h``, ``30s``, ``1d`` ago, or an ISO 8601 time; Unix seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        now = time.time() if now is None else now
        return now - float(match.group(1)) * _UNITS_S[match.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: use e.g. 10m, 2h, 1d or 2026-11-29T10:00:00") from None
    return moment.timestamp()


def job_lines(
    record: JobRecord,
    stream: LogStream,
    query: LogQuery,
    archive: Archive = no_archive,
    sources: LogSources | None = None,
) -> Iterator[LogLine]:
    """The job's lines that ``query`` keeps, oldest first (only the last ``tail``);
    ``sources`` learns where they came from once they are all read."""
    yield from backlog(record, stream, query, archive, sources).lines


def backlog(
    record: JobRecord,
    stream: LogStream,
    query: LogQuery,
    archive: Archive = no_archive,
    sources: LogSources | None = None,
) -> Backlog:
    """The job's lines so far, as :func:`job_lines` gives them, and where the stream
    stood. The stream is read now; the file and the archives as the lines are."""
    sources = LogSources() if sources is None else sources
    if query.tail is not None and query.tail > 0:
        # A tail the stream's newest entries hold is read from them alone, not from the
        # whole stream: a page polls its console's tail every 2 s, however long the log.
        newest = stream.last(record.id, query.tail // LINES_PER_ENTRY + 2)
        last = [line for line in newest if query.keeps(line)][-query.tail :]
        if len(last) == query.tail:  # a follow goes on after the newest entry
            return Backlog(noted(iter(last), sources, "stream"), newest[-1].entry_id)
    streamed = list(stream.read(record.id))
    joined: Iterator[LogLine]
    if query.tail is not None and sum(map(query.keeps, streamed)) >= query.tail:
        joined = noted(iter(streamed), sources, "stream")  # older lines are not shown
    else:
        dropped = stream.dropped(record.id) if streamed else 0  # after the read: no race
        numbers = [a.number for a in record.attempts]
        local = open_log(Path(record.log_path)) if record.log_path else None
        joined = join(record.id, numbers, streamed, dropped, local, archive, sources, query.attempt)
    read: dict[int, int] = {}
    kept = (line for line in _counted(joined, read) if query.keeps(line))
    after = streamed[-1].entry_id if streamed else "0-0"
    if query.tail is not None:
        return Backlog(_later(lambda: iter(deque(kept, maxlen=query.tail))), after, read)
    return Backlog(kept, after, read)


def follow(
    record: JobRecord,
    stream: LogStream,
    query: LogQuery,
    is_final: Callable[[], bool],
    block_ms: int = 1000,
    archive: Archive = no_archive,
    sources: LogSources | None = None,
) -> Iterator[LogLine]:
    """The job's lines as they come, until the job is final and nothing more arrives."""
    past = backlog(record, stream, query, archive, sources)
    yield from past.lines
    yield from live(record.id, stream, query, is_final, past.after, block_ms, past.read)


def live(
    job_id: str,
    stream: LogStream,
    query: LogQuery,
    is_final: Callable[[], bool],
    after: str,
    block_ms: int = 1000,
    read: dict[int, int] | None = None,
) -> Iterator[LogLine]:
    """The stream's lines after entry ``after``, until the job is final and drained;
    not those among the first ``read[attempt]`` of their attempt (read already)."""
    for line in live_or_idle(job_id, stream, query, is_final, after, block_ms, read):
        if line is not None:
            yield line


def live_or_idle(
    job_id: str,
    stream: LogStream,
    query: LogQuery,
    is_final: Callable[[], bool],
    after: str,
    block_ms: int = 1000,
    read: dict[int, int] | None = None,
) -> Iterator[LogLine | None]:
    """:func:`live`, and None after each ``block_ms`` that brought no line (so a caller
    can tell a listener the job is quiet, not gone)."""
    last, read = after, read or {}
    while True:
        final = is_final()  # read before the stream: lines written before it are drained
        lines = stream.follow(job_id, last, block_ms)
        for line in lines:
            known = line.index is not None and line.index < read.get(line.attempt, 0)
            if query.keeps(line) and not known:
                yield line
        if lines:
            last = lines[-1].entry_id
        elif final:
            return
        else:
            yield None


def search(
    records: Iterator[JobRecord],
    stream: LogStream,
    pattern: re.Pattern[str],
    archive: JobArchive = lambda job_id, attempt: None,
) -> Iterator[LogLine]:
    """Every line of every job that matches ``pattern``, job by job."""
    for record in records:
        yield from job_lines(record, stream, LogQuery(grep=pattern), of_job(archive, record.id))


def of_job(archive: JobArchive, job_id: str) -> Archive:
    """The archives of one job."""
    return lambda attempt: archive(job_id, attempt)


def _counted(lines: Iterator[LogLine], read: dict[int, int]) -> Iterator[LogLine]:
    for line in lines:
        if line.index is not None:
            read[line.attempt] = max(read.get(line.attempt, 0), line.index + 1)
        yield line


def _later(make: Callable[[], Iterator[LogLine]]) -> Iterator[LogLine]:
    """``make()``'s lines, made only when the first is asked for."""
    yield from make()
