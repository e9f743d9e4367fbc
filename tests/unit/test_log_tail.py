"""A log's tail is read from the stream's newest entries, not the whole stream, when
they hold it (a page polls its console's tail every few seconds)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from trainq.jobs.record import JobRecord
from trainq.jobs.spec import JobSpec
from trainq.logs.reader import LogQuery, backlog, job_lines
from trainq.logs.stream import LogLine, MemoryLogStream


class CountingStream(MemoryLogStream):
    """Counts the lines a whole read gives."""

    def __init__(self) -> None:
        super().__init__()
        self.read_lines = 0

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        for line in super().read(job_id, after):
            self.read_lines += 1
            yield line


def logged(count: int) -> tuple[JobRecord, CountingStream]:
    stream = CountingStream()
    stream.append("j", [(1, float(n), f"line {n}") for n in range(count)])
    return JobRecord(id="j", spec=JobSpec()), stream


def test_a_tail_the_newest_entries_hold_never_reads_the_whole_stream() -> None:
    record, stream = logged(20_000)

    shown = [line.line for line in job_lines(record, stream, LogQuery(tail=500))]

    assert shown == [f"line {n}" for n in range(19_500, 20_000)]
    assert stream.read_lines == 0


def test_the_apis_backlog_of_a_tail_reads_only_the_newest_entries_and_follows_after_them() -> None:
    record, stream = logged(20_000)

    past = backlog(record, stream, LogQuery(tail=10))

    assert [line.line for line in past.lines] == [f"line {n}" for n in range(19_990, 20_000)]
    assert stream.read_lines == 0
    assert past.after == "20000-0"  # the newest entry: a follow goes on after it


def test_a_filtered_tail_the_newest_entries_do_not_hold_reads_everything() -> None:
    record, stream = logged(20_000)
    rare = LogQuery(tail=3, grep=re.compile(r"line 1\d$"))  # lines 10..19, long ago

    shown = [line.line for line in job_lines(record, stream, rare)]

    assert shown == ["line 17", "line 18", "line 19"]
    assert stream.read_lines == 20_000
