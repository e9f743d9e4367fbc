"""Reading job logs back: one job's lines, a live follow, a search across jobs.

Lines come from the job's Redis stream, which any host can read. When the stream's
cap has trimmed a job's oldest lines and the job's log file is on this host, the
file (which holds every line up to its own size cap) is read instead.
"""

from __future__ import annotations

import gzip
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trainq.jobs.record import JobRecord
from trainq.logs.format import decode
from trainq.logs.retention import open_log
from trainq.logs.stream import LogLine, LogStream

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


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


def job_lines(record: JobRecord, stream: LogStream, query: LogQuery) -> Iterator[LogLine]:
    """The job's lines that ``query`` keeps, oldest first (only the last ``tail``)."""
    source: Iterator[LogLine]
    local = open_log(Path(record.log_path)) if record.log_path else None
    if local is not None and stream.dropped(record.id):
        source = _file_lines(record.id, local)
    else:
        source = stream.read(record.id)
    kept = (line for line in source if query.keeps(line))
    if query.tail is not None:
        yield from deque(kept, maxlen=query.tail)
    else:
        yield from kept


def follow(
    job_id: str,
    stream: LogStream,
    query: LogQuery,
    is_final: Callable[[], bool],
    block_ms: int = 1000,
) -> Iterator[LogLine]:
    """The job's lines as they come, until the job is final and nothing more arrives."""
    backlog = list(stream.read(job_id))
    kept = [line for line in backlog if query.keeps(line)]
    yield from deque(kept, maxlen=query.tail) if query.tail is not None else kept
    last = backlog[-1].entry_id if backlog else "0-0"
    while True:
        final = is_final()  # read before the stream: lines written before it are drained
        lines = stream.follow(job_id, last, block_ms)
        for line in lines:
            if query.keeps(line):
                yield line
        if lines:
            last = lines[-1].entry_id
        elif final:
            return


def search(
    records: Iterator[JobRecord], stream: LogStream, pattern: re.Pattern[str]
) -> Iterator[LogLine]:
    """Every line of every job that matches ``pattern``, job by job."""
    for record in records:
        yield from job_lines(record, stream, LogQuery(grep=pattern))


def _file_lines(job_id: str, path: Path) -> Iterator[LogLine]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        for text in lines:
            entry = decode(text)
            if entry is None or entry.event:
                continue  # attempt boundaries and markers: not the job's own output
            yield LogLine(job_id, entry.attempt, entry.ts, entry.msg)
