"""Watching one job for its page: its record, its new metric points and its console's
new lines, read in one step (a few Redis calls) however many pages watch it.

The API's feed (:mod:`trainq.api.feeds`) calls :meth:`JobWatch.first` once, then
:meth:`JobWatch.next` a few times a second, and fans what they find out to every page
following the job. Each step is bounded whatever the job prints: at most ``tail``
console lines (the newest: a console shows a tail), every metric point (the series is
capped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from trainq import connections
from trainq.client.jobs import get_job, waiting_reason
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.logs import reader
from trainq.logs.joining import Archive
from trainq.logs.series import MetricSeries, Point
from trainq.logs.stream import LINES_PER_ENTRY, LogLine, LogStream

# A queued job's reason to wait is worked out again at most this often while its record
# does not change (it may read the whole pending queue).
WAITING_EVERY_S = 5.0


@dataclass(frozen=True)
class Sighting:
    """What a step saw: the record (None when it has not changed since the last step),
    why it waits, and the points and console lines new since the last step."""

    record: JobRecord | None
    waiting: str | None
    points: list[Point]
    lines: list[LogLine]

    @property
    def final(self) -> bool:
        return self.record is not None and self.record.status.is_terminal


class JobWatch:
    """One job, watched: where its series and its console were read up to."""

    def __init__(
        self,
        job_id: str,
        settings: Settings,
        tail: int,
        *,
        read_record: Callable[[str], JobRecord] = get_job,
        stream: LogStream | None = None,
        series: MetricSeries | None = None,
        archive: Archive = reader.no_archive,
        waiting: Callable[[JobRecord], str | None] | None = None,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.tail = tail
        self._settings = settings
        self._read_record = read_record
        self._stream = stream or connections.log_stream(settings)
        self._series = series or connections.metric_series(settings)
        self._archive = archive
        self._waiting = waiting or (lambda record: waiting_reason(record, settings))
        self._clock_s = clock_s
        self._record: JobRecord | None = None
        self._reason: str | None = None
        self._reason_at_s = float("-inf")
        self._point_after: str | None = None
        self._line_after = "0-0"
        self._read: dict[int, int] = {}  # each attempt's lines read from older copies

    def first(self) -> Sighting:
        """Everything so far: the record, every point, the console's last ``tail`` lines
        (from the stream, or the job's log file and archives where it no longer holds
        them)."""
        record = self._read_record(self.job_id)
        past = reader.backlog(record, self._stream, reader.LogQuery(tail=self.tail), self._archive)
        lines = list(past.lines)
        self._line_after, self._read = past.after, dict(past.read)
        found = self._series.read(self.job_id)
        self._point_after = found.last
        self._record = None  # the first sighting always carries the record
        return Sighting(*self._seen(record), found.points, lines)

    def next(self) -> Sighting:
        """What is new since the last step. The record is read first: a line written
        before the job ended is read in the same step that sees it end."""
        record = self._read_record(self.job_id)
        found = self._series.read(self.job_id, self._point_after)
        self._point_after = found.last
        newest = self._stream.last(self.job_id, self.tail // LINES_PER_ENTRY + 2, self._line_after)
        if newest:
            self._line_after = newest[-1].entry_id
        fresh = [line for line in newest if not self._known(line)][-self.tail :]
        return Sighting(*self._seen(record), found.points, fresh)

    def _seen(self, record: JobRecord) -> tuple[JobRecord | None, str | None]:
        """The record if it changed (or a queued job's reason did), and the reason."""
        changed = record != self._record
        now_s = self._clock_s()
        if changed or now_s - self._reason_at_s >= WAITING_EVERY_S:
            reason = self._waiting(record)
            self._reason_at_s = now_s
            changed = changed or reason != self._reason
            self._reason = reason
        self._record = record
        return (record if changed else None), self._reason

    def _known(self, line: LogLine) -> bool:
        """A line the first step read from the job's log file, ahead of the stream."""
        return line.index is not None and line.index < self._read.get(line.attempt, 0)
