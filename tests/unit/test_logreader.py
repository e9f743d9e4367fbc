"""trainq.logreader: reading a job's lines back, following them, searching every job's."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.logs import retention
from trainq.logs.reader import (
    LogQuery,
    LogSources,
    failing_soft,
    follow,
    job_lines,
    parse_since,
    search,
)
from trainq.logs.stream import Capture, LogLine, MemoryLogStream
from trainq.logs.writer import JobLog


class DroppingStream(MemoryLogStream):
    """A stream whose cap has trimmed the job's oldest lines."""

    def __init__(self, dropped: int) -> None:
        super().__init__()
        self._dropped = dropped

    def dropped(self, job_id: str) -> int:
        return self._dropped


class ScriptedStream:
    """A backlog for read(), then one scripted batch per follow() call."""

    def __init__(self, backlog: list[LogLine], batches: list[list[LogLine]]) -> None:
        self.backlog = backlog
        self.batches = list(batches)
        self.follow_calls: list[tuple[str, str, int]] = []

    def append(self, job_id: str, lines: list[tuple[int, float, str]]) -> None:
        raise AssertionError("readers never append")

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        assert after == "-"
        yield from self.backlog

    def last(self, job_id: str, entries: int) -> list[LogLine]:
        return self.backlog[-entries:]  # an entry here is one line

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        self.follow_calls.append((job_id, after, block_ms))
        assert self.batches, "follow() went on after the job was final and drained"
        return self.batches.pop(0)

    def dropped(self, job_id: str) -> int:
        return 0


def _line(n: int, text: str, attempt: int = 1, ts: float | None = None) -> LogLine:
    return LogLine("job-1", attempt, float(n) if ts is None else ts, text, f"{n}-0")


def _record(job_id: str, log_path: Path | None = None, attempts: int = 0) -> JobRecord:
    return JobRecord(
        id=job_id,
        spec=JobSpec(),
        log_path=None if log_path is None else str(log_path),
        attempts=[Attempt(number=n) for n in range(1, attempts + 1)],
    )


def _fill(stream: MemoryLogStream, job_id: str, lines: list[tuple[int, float, str]]) -> None:
    stream.append(job_id, lines)


def _texts(lines: Iterator[LogLine]) -> list[str]:
    return [line.line for line in lines]


@pytest.fixture
def stream() -> MemoryLogStream:
    """job-1: two attempts, lines at ts 100..105."""
    s = MemoryLogStream()
    _fill(
        s,
        "job-1",
        [
            (1, 100.0, "boot"),
            (1, 101.0, "epoch 1 loss 0.9"),
            (1, 102.0, "CUDA error: out of memory"),
            (2, 103.0, "boot"),
            (2, 104.0, "epoch 1 loss 0.8"),
            (2, 105.0, "epoch 2 loss 0.5"),
        ],
    )
    return s


# LogQuery


def test_empty_query_keeps_everything(stream: MemoryLogStream) -> None:
    got = list(job_lines(_record("job-1"), stream, LogQuery()))

    assert [(g.attempt, g.ts, g.line) for g in got] == [
        (g.attempt, g.ts, g.line) for g in stream.read("job-1")
    ]
    assert len(got) == 6


def test_query_filters_by_attempt(stream: MemoryLogStream) -> None:
    got = list(job_lines(_record("job-1"), stream, LogQuery(attempt=2)))

    assert [g.line for g in got] == ["boot", "epoch 1 loss 0.8", "epoch 2 loss 0.5"]
    assert {g.attempt for g in got} == {2}


def test_query_filters_by_since_inclusive(stream: MemoryLogStream) -> None:
    got = list(job_lines(_record("job-1"), stream, LogQuery(since=102.0)))

    assert [g.ts for g in got] == [102.0, 103.0, 104.0, 105.0]


def test_query_filters_by_grep_search_anywhere(stream: MemoryLogStream) -> None:
    query = LogQuery(grep=re.compile(r"loss 0\.[89]"))

    got = list(job_lines(_record("job-1"), stream, query))

    assert [(g.attempt, g.line) for g in got] == [
        (1, "epoch 1 loss 0.9"),
        (2, "epoch 1 loss 0.8"),
    ]


def test_query_filters_combine(stream: MemoryLogStream) -> None:
    query = LogQuery(attempt=2, since=104.0, grep=re.compile("epoch"))

    assert _texts(job_lines(_record("job-1"), stream, query)) == [
        "epoch 1 loss 0.8",
        "epoch 2 loss 0.5",
    ]


def test_tail_keeps_the_last_n_of_the_kept_lines(stream: MemoryLogStream) -> None:
    query = LogQuery(grep=re.compile("boot|CUDA"), tail=2)

    got = list(job_lines(_record("job-1"), stream, query))

    assert [(g.attempt, g.line) for g in got] == [(1, "CUDA error: out of memory"), (2, "boot")]


@pytest.mark.parametrize("tail", [0, 1, 3, 6, 100])
def test_tail_sizes(stream: MemoryLogStream, tail: int) -> None:
    everything = _texts(stream.read("job-1"))

    got = _texts(job_lines(_record("job-1"), stream, LogQuery(tail=tail)))

    assert got == everything[len(everything) - min(tail, len(everything)) :]


def test_keeps_checks_each_condition() -> None:
    line = LogLine("j", 2, 50.0, "hello world")

    assert LogQuery().keeps(line)
    assert LogQuery(attempt=2, since=50.0, grep=re.compile("wor")).keeps(line)
    assert not LogQuery(attempt=1).keeps(line)
    assert not LogQuery(since=50.000001).keeps(line)
    assert not LogQuery(grep=re.compile("^world")).keeps(line)


# parse_since


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("2h", 7_200), ("1d", 86_400), ("30s", 30), ("1.5h", 5_400), (" 5m ", 300)],
)
def test_parse_since_relative(text: str, seconds: float) -> None:
    now = 1_000_000.0

    assert parse_since(text, now=now) == now - seconds


def test_parse_since_ten_minutes_before_1000() -> None:
    assert parse_since("10m", now=1000.0) == 400.0


def test_parse_since_relative_defaults_to_now() -> None:
    before = time.time()
    got = parse_since("1h")
    after = time.time()

    assert before - 3_600 <= got <= after - 3_600


def test_parse_since_honours_now_zero() -> None:
    assert parse_since("10s", now=0.0) == -10.0


@pytest.mark.parametrize(
    "text",
    ["2026-11-29T10:00:00Z", "2026-11-29T10:00:00+00:00", "2026-11-29T12:00:00+02:00"],
)
def test_parse_since_iso_times(text: str) -> None:
    expected = datetime(2026, 11, 29, 10, tzinfo=UTC).timestamp()

    assert parse_since(text, now=1.0) == expected


def test_parse_since_iso_with_fraction() -> None:
    moment = datetime(2026, 11, 29, 10, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=-5)))

    assert parse_since("2026-11-29T10:00:00.25-05:00") == moment.timestamp()


@pytest.mark.parametrize("text", ["yesterday", "10", "m10", "10x", "-5m", "10 minutes", ""])
def test_parse_since_rejects_bad_values(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_since(text, now=1000.0)

    assert repr(text) in str(caught.value)


# job_lines: stream or local file


def _write_job_log(path: Path, attempts: dict[int, list[str]]) -> tuple[float, float]:
    """The job's log file as the runner writes it; when the writing began and ended."""
    started = time.time()
    scratch = MemoryLogStream()
    for attempt, lines in attempts.items():
        with JobLog(
            path, "job-1", attempt, stream=scratch, tail_lines=5, max_bytes=1_000_000
        ) as log:
            for line in lines:
                log.write(line)
    return started, time.time()


def test_job_lines_reads_the_stream_when_nothing_was_dropped(
    tmp_path: Path, stream: MemoryLogStream
) -> None:
    path = tmp_path / "job-1.log"
    _write_job_log(path, {1: ["from the file"]})

    got = _texts(job_lines(_record("job-1", path), stream, LogQuery()))

    assert got == _texts(stream.read("job-1"))


def test_job_lines_reads_the_file_when_the_stream_dropped_lines(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / "job-1.log"
    attempts = {1: ["a1", "a2", "a3"], 2: ["b1", "b2 ✓"]}
    started, ended = _write_job_log(path, attempts)
    stream = DroppingStream(dropped=3)
    _fill(stream, "job-1", [(2, 9e9, "b2 ✓")])  # what the capped stream still has

    got = list(job_lines(_record("job-1", path), stream, LogQuery()))

    assert [(g.attempt, g.line) for g in got] == [
        (attempt, line) for attempt, lines in attempts.items() for line in lines
    ]
    assert {g.job_id for g in got} == {"job-1"}
    assert all(started - 1e-6 <= g.ts <= ended + 1e-6 for g in got)
    assert [g.ts for g in got] == sorted(g.ts for g in got)


def test_job_lines_from_the_file_still_apply_the_query(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    _write_job_log(path, {1: ["x1", "y1", "x2"], 2: ["x3", "y2", "x4", "x5"]})
    stream = DroppingStream(dropped=1)

    query = LogQuery(attempt=2, grep=re.compile("^x"), tail=2)

    assert _texts(job_lines(_record("job-1", path, attempts=2), stream, query)) == ["x4", "x5"]


def test_job_lines_reads_the_stream_when_the_file_is_elsewhere(tmp_path: Path) -> None:
    stream = DroppingStream(dropped=10)
    _fill(stream, "job-1", [(1, 1.0, "only in the stream")])

    missing = _record("job-1", tmp_path / "on-another-host.log")
    no_path = _record("job-1")

    assert _texts(job_lines(missing, stream, LogQuery())) == ["only in the stream"]
    assert _texts(job_lines(no_path, stream, LogQuery())) == ["only in the stream"]


def test_job_lines_reads_the_compressed_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / "job-1.log"
    attempts = {1: ["a1", "a2"], 2: ["b1", "b2", "b3"]}
    _write_job_log(path, attempts)
    stream = DroppingStream(dropped=2)
    record = _record("job-1", path, attempts=2)
    expected = [(g.attempt, g.ts, g.line) for g in job_lines(record, stream, LogQuery())]
    mtime = path.stat().st_mtime

    done = retention.sweep(tmp_path, retention_days=30, now=mtime + 2 * 86_400)

    packed = path.with_name(path.name + ".gz")
    assert done.compressed == [packed]
    assert not path.exists()
    got = [(g.attempt, g.ts, g.line) for g in job_lines(record, stream, LogQuery())]
    assert got == expected
    assert [line for _, _, line in got] == ["a1", "a2", "b1", "b2", "b3"]


def test_job_lines_skips_lines_that_are_not_json(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    _write_job_log(path, {1: ["kept"]})
    with path.open("a", encoding="utf-8") as f:
        f.write("{not json\n")

    record = _record("job-1", path, attempts=1)
    got = _texts(job_lines(record, DroppingStream(dropped=1), LogQuery()))

    assert got == ["kept"]


# follow


def test_follow_yields_backlog_then_new_lines_until_final() -> None:
    backlog = [_line(1, "old 1"), _line(2, "old 2")]
    fake = ScriptedStream(
        backlog,
        [[_line(3, "new 3")], [], [_line(4, "new 4"), _line(5, "new 5")], [_line(6, "late")], []],
    )
    finals = iter([False, False, False, True, True])

    got = list(follow(_record("job-1"), fake, LogQuery(), lambda: next(finals), block_ms=250))

    assert _texts(iter(got)) == ["old 1", "old 2", "new 3", "new 4", "new 5", "late"]
    assert [after for _, after, _ in fake.follow_calls] == ["2-0", "3-0", "3-0", "5-0", "6-0"]
    assert {(job, block) for job, _, block in fake.follow_calls} == {("job-1", 250)}
    assert fake.batches == []


def test_follow_returns_when_final_and_nothing_arrives() -> None:
    fake = ScriptedStream([_line(1, "only")], [[]])

    got = list(follow(_record("job-1"), fake, LogQuery(), lambda: True))

    assert _texts(iter(got)) == ["only"]
    assert len(fake.follow_calls) == 1


def test_follow_waits_while_not_final() -> None:
    fake = ScriptedStream([], [[], [], [], [_line(1, "at last")], []])
    finals = iter([False, False, False, False, True])

    got = list(follow(_record("job-1"), fake, LogQuery(), lambda: next(finals)))

    assert _texts(iter(got)) == ["at last"]
    assert [after for _, after, _ in fake.follow_calls] == ["0-0", "0-0", "0-0", "0-0", "1-0"]


def test_follow_applies_the_query_and_tails_only_the_backlog() -> None:
    backlog = [_line(1, "a x"), _line(2, "b"), _line(3, "c x"), _line(4, "d x")]
    fake = ScriptedStream(backlog, [[_line(5, "e x"), _line(6, "f"), _line(7, "g x")], []])
    finals = iter([False, True])

    query = LogQuery(grep=re.compile("x"), tail=1)
    got = list(follow(_record("job-1"), fake, query, lambda: next(finals)))

    assert _texts(iter(got)) == ["d x", "e x", "g x"]
    # Filtered-out lines still move the position on.
    assert [after for _, after, _ in fake.follow_calls] == ["4-0", "7-0"]


@pytest.mark.parametrize("tail", [1, 2, 3, 10])
def test_follow_tails_the_backlog(tail: int) -> None:
    backlog = [_line(1, "a"), _line(2, "b"), _line(3, "c")]
    fake = ScriptedStream(backlog, [[]])

    got = _texts(follow(_record("job-1"), fake, LogQuery(tail=tail), lambda: True))

    assert got == ["a", "b", "c"][max(3 - tail, 0) :]
    assert [after for _, after, _ in fake.follow_calls] == ["3-0"]


def test_follow_with_tail_zero_shows_only_new_lines() -> None:
    fake = ScriptedStream([_line(1, "old")], [[_line(2, "new")], []])
    finals = iter([False, True])

    got = list(follow(_record("job-1"), fake, LogQuery(tail=0), lambda: next(finals)))

    assert _texts(iter(got)) == ["new"]


def test_follow_with_memory_stream_reads_what_was_appended() -> None:
    s = MemoryLogStream()
    _fill(s, "job-1", [(1, 1.0, "one"), (1, 2.0, "two")])
    calls = 0

    def is_final() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            _fill(s, "job-1", [(1, 3.0, "three")])  # written while the job still ran
            return False
        return True

    got = list(follow(_record("job-1"), s, LogQuery(), is_final, block_ms=0))

    assert _texts(iter(got)) == ["one", "two", "three"]


# search


def test_search_yields_matches_across_jobs_in_record_order(tmp_path: Path) -> None:
    s = MemoryLogStream()
    _fill(s, "job-a", [(1, 1.0, "ok"), (1, 2.0, "ERROR disk full"), (2, 3.0, "ERROR again")])
    _fill(s, "job-b", [(1, 4.0, "all good")])
    _fill(s, "job-c", [(3, 5.0, "RuntimeError: ERROR in loss")])

    records = iter([_record("job-c"), _record("job-b"), _record("job-a")])
    got = list(search(records, s, re.compile(r"\bERROR\b")))

    assert [(g.job_id, g.attempt, g.line) for g in got] == [
        ("job-c", 3, "RuntimeError: ERROR in loss"),
        ("job-a", 1, "ERROR disk full"),
        ("job-a", 2, "ERROR again"),
    ]


def test_search_reads_a_local_file_when_the_stream_dropped_lines(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    _write_job_log(path, {1: ["needle one", "hay"], 2: ["needle two"]})
    s = DroppingStream(dropped=1)
    _fill(s, "job-2", [(1, 1.0, "needle three")])

    records = iter([_record("job-1", path, attempts=2), _record("job-2")])
    got = list(search(records, s, re.compile("needle")))

    assert [(g.job_id, g.line) for g in got] == [
        ("job-1", "needle one"),
        ("job-1", "needle two"),
        ("job-2", "needle three"),
    ]


def test_search_without_matches_is_empty(stream: MemoryLogStream) -> None:
    assert list(search(iter([_record("job-1")]), stream, re.compile("nothing like this"))) == []


# job_lines: the stream joined to the local file and the archives


def _run_job(
    path: Path, stream: MemoryLogStream, attempts: dict[int, list[str]], max_bytes: int = 1_000_000
) -> None:
    """A job's attempts as the runner writes them: the local file and the stream."""
    for attempt, lines in attempts.items():
        with JobLog(
            path, "job-1", attempt, stream=stream, tail_lines=5, max_bytes=max_bytes
        ) as log:
            for line in lines:
                log.write(line)


def _archive_of(path: Path, attempt: int, lines: int | None = None) -> list[str]:
    """The attempt's part of the log file, as the worker archives it: every line (the
    end marker too), or only its first ``lines`` output lines (a host killed mid-way)."""
    texts = [t for t in path.read_text().splitlines(keepends=True) if f'"attempt": {attempt},' in t]
    if lines is None:
        return texts
    kept: list[str] = []
    for text in texts:
        if '"event"' not in text:
            if lines == 0:
                break
            lines -= 1
        kept.append(text)
    return kept


class Archives:
    """The archive callable: attempt number → its lines; remembers what was asked."""

    def __init__(self, archives: dict[int, list[str]]) -> None:
        self.archives = archives
        self.asked: list[int] = []

    def __call__(self, attempt: int) -> Iterator[str] | None:
        self.asked.append(attempt)
        texts = self.archives.get(attempt)
        return None if texts is None else iter(texts)


def _never(attempt: int) -> Iterator[str] | None:
    raise AssertionError(f"the archive of attempt {attempt} was fetched")


A1 = [f"a{n}" for n in range(10)]
A2 = [f"b{n}" for n in range(4)]
EVERY_LINE = [(1, line) for line in A1] + [(2, line) for line in A2]


def _pairs(lines: Iterator[LogLine]) -> list[tuple[int, str]]:
    return [(line.attempt, line.line) for line in lines]


def test_stream_trimmed_into_attempt_1_joins_its_short_archive_every_line_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker-host" / "job-1.log"
    stream = MemoryLogStream(max_lines=8)  # keeps a6..a9 and b0..b3
    _run_job(path, stream, {1: A1, 2: A2})
    archives = Archives({1: _archive_of(path, 1, lines=8)})  # a0..a7: lacks a8, a9
    elsewhere = _record("job-1", tmp_path / "this-host" / "job-1.log", attempts=2)
    sources = LogSources()

    got = list(job_lines(elsewhere, stream, LogQuery(), archives, sources))

    assert stream.dropped("job-1") == 6
    assert _pairs(iter(got)) == EVERY_LINE
    assert [g.index for g in got] == list(range(10)) + list(range(4))
    assert sources.used == ["archive attempt 1", "stream"]
    assert sources.missing == {}
    assert archives.asked == [1]  # attempt 2 is whole in the stream


def test_the_local_file_is_preferred_when_it_holds_more_than_the_stream_lacks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job-1.log"
    stream = MemoryLogStream(max_lines=8)
    _run_job(path, stream, {1: A1, 2: A2})
    archives = Archives({1: _archive_of(path, 1, lines=8)})
    sources = LogSources()

    got = _pairs(
        job_lines(_record("job-1", path, attempts=2), stream, LogQuery(), archives, sources)
    )

    assert got == EVERY_LINE
    assert sources.used == [f"local file {path}", "stream"]
    assert archives.asked == []  # the file held every line the stream lacks


def test_a_fully_trimmed_attempt_complete_in_the_local_file_needs_no_archive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "job-1.log"
    stream = MemoryLogStream(max_lines=3)  # b1..b3 only
    _run_job(path, stream, {1: A1, 2: A2})
    sources = LogSources()

    got = _pairs(job_lines(_record("job-1", path, attempts=2), stream, LogQuery(), _never, sources))

    assert got == EVERY_LINE
    assert sources.used == [f"local file {path}"]  # which holds attempt 2 too


def test_the_archive_adds_what_the_local_file_lacks(tmp_path: Path) -> None:
    worker = tmp_path / "worker" / "job-1.log"
    stream = MemoryLogStream(max_lines=8)
    _run_job(worker, stream, {1: A1, 2: A2})
    here = tmp_path / "here" / "job-1.log"  # a copy of attempt 1's first 3 lines only
    here.parent.mkdir()
    here.write_text("".join(_archive_of(worker, 1, lines=3)))
    archives = Archives({1: _archive_of(worker, 1)})
    sources = LogSources()

    got = _pairs(
        job_lines(_record("job-1", here, attempts=2), stream, LogQuery(), archives, sources)
    )

    assert got == EVERY_LINE
    assert sources.used == [f"local file {here}", "archive attempt 1", "stream"]


def test_an_untrimmed_stream_alone_is_read_and_no_archive_is_fetched(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    stream = MemoryLogStream()
    _run_job(path, stream, {1: A1, 2: A2})
    sources = LogSources()

    got = _pairs(job_lines(_record("job-1", path, attempts=2), stream, LogQuery(), _never, sources))

    assert got == EVERY_LINE
    assert sources.used == ["stream"]
    assert sources.missing == {}


def test_a_tail_the_stream_holds_needs_nothing_else(tmp_path: Path) -> None:
    stream = MemoryLogStream(max_lines=8)
    _run_job(tmp_path / "job-1.log", stream, {1: A1, 2: A2})
    sources = LogSources()

    got = _texts(job_lines(_record("job-1", attempts=2), stream, LogQuery(tail=5), _never, sources))

    assert got == ["a9", "b0", "b1", "b2", "b3"]
    assert sources.used == ["stream"]


def test_a_truncated_local_file_ends_at_its_marker_and_the_gap_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    stream = MemoryLogStream(max_lines=10)
    lines = [f"line {n:02d} " + "x" * 80 for n in range(20)]
    _run_job(path, stream, {1: lines}, max_bytes=1_024)
    in_file = [t for t in path.read_text().splitlines() if '"event"' not in t]
    assert 0 < len(in_file) < 10  # the cap cut the file before the stream's first line
    assert '"truncated"' in path.read_text()
    sources = LogSources()

    got = list(job_lines(_record("job-1", path, attempts=1), stream, LogQuery(), sources=sources))

    assert _texts(iter(got)) == lines[: len(in_file)] + lines[10:]
    assert sources.used == [f"local file {path}", "stream"]
    assert sources.missing == {1: 10 - len(in_file)}


def test_missing_lines_are_counted_per_attempt(tmp_path: Path) -> None:
    stream = MemoryLogStream(max_lines=2)  # b2, b3: attempt 1 gone, b0 and b1 too
    _run_job(tmp_path / "worker" / "job-1.log", stream, {1: A1, 2: A2})
    sources = LogSources()

    got = _pairs(job_lines(_record("job-1", attempts=2), stream, LogQuery(), sources=sources))

    assert got == [(2, "b2"), (2, "b3")]
    assert sources.used == ["stream"]
    assert sources.missing == {1: 10, 2: 2}


def test_a_short_archive_of_a_fully_trimmed_attempt_counts_what_it_lacks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "worker" / "job-1.log"
    stream = MemoryLogStream(max_lines=3)
    _run_job(path, stream, {1: A1, 2: A2})
    archives = Archives({1: _archive_of(path, 1, lines=7), 2: _archive_of(path, 2)})
    sources = LogSources()

    got = _pairs(job_lines(_record("job-1", attempts=2), stream, LogQuery(), archives, sources))

    assert got == EVERY_LINE[:7] + EVERY_LINE[10:]
    assert sources.used == ["archive attempt 1", "archive attempt 2"]  # b1..b3 too
    assert sources.missing == {1: 3}
    assert archives.asked == [1, 2]


def test_only_the_asked_attempt_is_fetched(tmp_path: Path) -> None:
    path = tmp_path / "worker" / "job-1.log"
    stream = MemoryLogStream(max_lines=3)
    _run_job(path, stream, {1: A1, 2: A2})
    archives = Archives({1: _archive_of(path, 1), 2: _archive_of(path, 2)})

    got = _texts(job_lines(_record("job-1", attempts=2), stream, LogQuery(attempt=2), archives))

    assert got == A2
    assert archives.asked == [2]


def test_a_failing_archive_is_told_once_and_the_rest_is_still_read(tmp_path: Path) -> None:
    stream = MemoryLogStream(max_lines=3)
    _run_job(tmp_path / "worker" / "job-1.log", stream, {1: A1, 2: A2})
    asked: list[int] = []
    told: list[Exception] = []

    def down(attempt: int) -> Iterator[str] | None:
        asked.append(attempt)
        raise ConnectionError("store at s3://bucket does not answer")

    soft = failing_soft(down, told.append, (ConnectionError,))
    sources = LogSources()

    got = _texts(job_lines(_record("job-1", attempts=2), stream, LogQuery(), soft, sources))

    assert got == ["b1", "b2", "b3"]
    assert asked == [1]  # not asked again once it failed
    assert [str(e) for e in told] == ["store at s3://bucket does not answer"]
    assert sources.missing == {2: 1, 1: 10}


def test_an_archive_failing_while_read_keeps_what_it_gave(tmp_path: Path) -> None:
    path = tmp_path / "worker" / "job-1.log"
    stream = MemoryLogStream(max_lines=8)
    _run_job(path, stream, {1: A1, 2: A2})
    texts = _archive_of(path, 1)

    def breaks(attempt: int) -> Iterator[str]:
        yield from texts[:4]  # the start marker, a0..a2
        raise TimeoutError("read timed out")

    told: list[Exception] = []
    soft = failing_soft(breaks, told.append)  # TimeoutError: an OSError
    sources = LogSources()

    got = _texts(job_lines(_record("job-1", attempts=2), stream, LogQuery(), soft, sources))

    assert got == ["a0", "a1", "a2", *A1[6:], *A2]
    assert sources.missing == {1: 3}
    assert len(told) == 1


def test_follow_joins_the_backlog_then_follows_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "worker" / "job-1.log"
    stream = MemoryLogStream(max_lines=8)
    _run_job(path, stream, {1: A1, 2: A2})
    archives = Archives({1: _archive_of(path, 1, lines=8)})
    calls = 0

    def is_final() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            _fill(stream, "job-1", [(2, 9.0, "b4")])
        return calls > 1

    sources = LogSources()
    got = _pairs(
        follow(_record("job-1", attempts=2), stream, LogQuery(), is_final, 0, archives, sources)
    )

    assert got == [*EVERY_LINE, (2, "b4")]
    assert sources.used == ["archive attempt 1", "stream"]


def test_search_reads_each_jobs_archives(tmp_path: Path) -> None:
    path = tmp_path / "worker" / "job-1.log"
    stream = MemoryLogStream(max_lines=3)
    _run_job(path, stream, {1: A1, 2: A2})
    asked: list[tuple[str, int]] = []

    def archive(job_id: str, attempt: int) -> Iterator[str] | None:
        asked.append((job_id, attempt))
        return iter(_archive_of(path, attempt))

    got = list(search(iter([_record("job-1", attempts=2)]), stream, re.compile("[ab]3"), archive))

    assert _pairs(iter(got)) == [(1, "a3"), (2, "b3")]
    assert asked == [("job-1", 1), ("job-1", 2)]


def test_the_stream_numbers_a_reattached_attempts_lines_on(tmp_path: Path) -> None:
    path = tmp_path / "job-1.log"
    stream = MemoryLogStream()
    with JobLog(path, "job-1", 1, stream=stream, tail_lines=5, max_bytes=1_000_000) as log:
        for line in A1[:4]:
            log.write(line)
        log.flush()
    mark = stream.capture("job-1")
    assert mark is not None
    with JobLog(
        path, "job-1", 1, stream=stream, tail_lines=5, max_bytes=1_000_000, resume=mark
    ) as log:
        for line in A1[4:]:
            log.write(line)

    assert [(g.line, g.index) for g in stream.read("job-1")] == [(a, n) for n, a in enumerate(A1)]


def test_follow_skips_what_a_local_file_ahead_of_the_stream_gave(tmp_path: Path) -> None:
    """On the worker's host the file is written before the stream: a follow that read a
    line there does not show it again when it reaches the stream."""
    path = tmp_path / "job-1.log"
    stream = MemoryLogStream(max_lines=2)  # b2, b3
    _run_job(path, stream, {1: A1, 2: A2})
    with path.open("a", encoding="utf-8") as file:  # b4: in the file, not yet streamed
        file.write(_archive_of(path, 2)[1].replace('"b0"', '"b4"'))
    calls = 0

    def is_final() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            stream.append("job-1", [(2, 9.0, "b4"), (2, 9.5, "b5")], Capture(2, 6, None, 0))
        return calls > 1

    got = _pairs(follow(_record("job-1", path, attempts=2), stream, LogQuery(), is_final, 0))

    assert got == [*EVERY_LINE, (2, "b4"), (2, "b5")]
