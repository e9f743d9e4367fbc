"""trainq.logs.writer.JobLog: one attempt's output in the job's log file and its log stream."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import trainq.logs.writer
from trainq.logs.stream import MemoryLogStream
from trainq.logs.writer import JobLog

JOB = "job-1"
BASE_KEYS = {"ts", "level", "component", "job_id", "attempt", "msg"}


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _output(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if "event" not in e]


def _events(entries: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in entries if "event" in e]


def _bytes(entry: dict[str, Any]) -> int:
    return len((json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8"))


def _ts(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()


def _open(
    path: Path,
    stream: MemoryLogStream,
    attempt: int = 1,
    *,
    tail_lines: int = 10,
    max_bytes: int = 1_000_000,
) -> JobLog:
    return JobLog(path, JOB, attempt, stream=stream, tail_lines=tail_lines, max_bytes=max_bytes)


@pytest.fixture
def no_timed_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a full batch, flush() or close() sends lines to the stream."""
    monkeypatch.setattr(trainq.logs.writer, "_FLUSH_INTERVAL_S", 3_600.0)


def test_lines_go_to_the_file_between_attempt_events(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / f"{JOB}.log"  # the folder is made on demand
    stream = MemoryLogStream()
    lines = [f"epoch {i} loss {1 / (i + 1):.4f}" for i in range(50)] + ["", "  spaced  ", "ünï ✓"]

    started = time.time()
    with _open(path, stream) as log:
        for line in lines:
            log.write(line)
    ended = time.time()

    entries = _entries(path)
    assert _events(entries) == ["attempt_started", "attempt_ended"]
    assert entries[0]["event"] == "attempt_started"
    assert entries[-1]["event"] == "attempt_ended"
    middle = entries[1:-1]
    assert [e["msg"] for e in middle] == lines
    for entry in entries:
        assert entry["component"] == "job"
        assert entry["job_id"] == JOB
        assert entry["attempt"] == 1
        assert started - 1e-6 <= _ts(entry) <= ended + 1e-6
    for entry in middle:
        assert set(entry) == BASE_KEYS
    assert str(len(lines)) in entries[-1]["msg"]  # the end event counts the lines


def test_close_with_a_summary_ends_the_attempt(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    log = _open(path, MemoryLogStream())
    log.write("one")
    log.write("two")
    log.close("exited with code 3")

    end = _entries(path)[-1]
    assert end["event"] == "attempt_ended"
    assert "exited with code 3" in end["msg"]
    assert "2 lines" in end["msg"]


def test_leaving_on_an_exception_says_supervision_failed(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    stream = MemoryLogStream()

    with pytest.raises(RuntimeError), _open(path, stream) as log:
        log.write("before the failure")
        raise RuntimeError("watcher died")

    entries = _entries(path)
    assert entries[-1]["event"] == "attempt_ended"
    assert "supervision failed" in entries[-1]["msg"]
    assert "watcher died" in entries[-1]["msg"]
    assert [line.line for line in stream.read(JOB)] == ["before the failure"]


def test_stream_gets_every_line_with_its_attempt_in_order(tmp_path: Path) -> None:
    stream = MemoryLogStream()
    lines = [f"line {i}" for i in range(300)]

    before = time.time()
    with _open(tmp_path / "job.log", stream, attempt=4) as log:
        for line in lines:
            log.write(line)
    after = time.time()

    got = list(stream.read(JOB))
    assert [g.line for g in got] == lines
    assert {g.attempt for g in got} == {4}
    assert {g.job_id for g in got} == {JOB}
    assert [g.ts for g in got] == sorted(g.ts for g in got)
    assert all(before <= g.ts <= after for g in got)
    assert log.lines == len(lines)


def test_file_and_stream_carry_the_same_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    stream = MemoryLogStream()
    with _open(path, stream) as log:
        for i in range(20):
            log.write(f"l{i}")

    file_ts = [_ts(e) for e in _output(_entries(path))]
    stream_ts = [g.ts for g in stream.read(JOB)]
    assert len(file_ts) == len(stream_ts) == 20
    assert all(abs(a - b) <= 2e-6 for a, b in zip(file_ts, stream_ts, strict=True))


def test_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    with _open(tmp_path / "job.log", MemoryLogStream(), tail_lines=3) as log:
        assert log.tail() == []
        log.write("a")
        log.write("b")
        assert log.tail() == ["a", "b"]
        for line in ["c", "d", "e"]:
            log.write(line)
        assert log.tail() == ["c", "d", "e"]
        assert log.lines == 5


def test_tail_keeps_lines_past_the_size_cap(tmp_path: Path) -> None:
    with _open(tmp_path / "job.log", MemoryLogStream(), tail_lines=2, max_bytes=300) as log:
        for i in range(100):
            log.write(f"line {i}")

        assert log.tail() == ["line 98", "line 99"]


@pytest.mark.parametrize("batch", [1, 37], ids=["line by line", "in batches"])
def test_size_cap_truncates_the_file_but_not_the_stream(tmp_path: Path, batch: int) -> None:
    path = tmp_path / "job.log"
    stream = MemoryLogStream()
    max_bytes = 2_000
    lines = [f"output line {i:04d}" for i in range(500)]

    log = _open(path, stream, max_bytes=max_bytes)
    for k in range(0, len(lines), batch):
        log.write_many(lines[k : k + batch])  # a batch crosses the cap
    log.flush()
    before_close = path.stat().st_size
    log.close("exited 0")

    entries = _entries(path)
    output = _output(entries)
    assert _events(entries) == ["attempt_started", "truncated", "attempt_ended"]
    assert entries[-2]["event"] == "truncated"
    assert str(max_bytes) in entries[-2]["msg"]
    # The file keeps a prefix of the output, cut off close to the cap...
    assert 0 < len(output) < len(lines)
    assert [e["msg"] for e in output] == lines[: len(output)]
    output_bytes = sum(_bytes(e) for e in output)
    assert output_bytes <= max_bytes
    assert before_close >= max_bytes - max(_bytes(e) for e in output)
    # ...and grows past the cap by its event records only.
    event_bytes = sum(_bytes(e) for e in entries if "event" in e)
    assert path.stat().st_size == output_bytes + event_bytes
    assert path.stat().st_size <= max_bytes + event_bytes
    # Every line is still counted, kept in the tail and sent to the stream.
    assert log.lines == len(lines)
    assert [g.line for g in stream.read(JOB)] == lines
    assert "exited 0" in entries[-1]["msg"]
    assert f"({len(lines)} lines)" in entries[-1]["msg"]


def test_size_cap_counts_the_event_records(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    max_bytes = 2_000
    with _open(path, MemoryLogStream(), max_bytes=max_bytes) as log:
        for i in range(500):
            log.write(f"output line {i:04d}")
        log.flush()

        entries = _entries(path)
        marker = next(e for e in entries if e.get("event") == "truncated")
        assert path.stat().st_size <= max_bytes + _bytes(marker)


def test_size_cap_counts_bytes_of_non_ascii_output(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    max_bytes = 2_000
    with _open(path, MemoryLogStream(), max_bytes=max_bytes) as log:
        for i in range(500):
            log.write("█" * 60 + f" {i}%")  # progress bars: 3 bytes a character

    output = _output(_entries(path))
    assert output, "some output is kept"
    assert sum(_bytes(e) for e in output) <= max_bytes


def test_second_attempt_appends_to_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    stream = MemoryLogStream()

    with _open(path, stream, attempt=1) as log:
        for i in range(3):
            log.write(f"first {i}")
    with _open(path, stream, attempt=2) as log:
        for i in range(2):
            log.write(f"second {i}")

    entries = _entries(path)
    assert [(e.get("event"), e["attempt"]) for e in entries] == [
        ("attempt_started", 1),
        (None, 1),
        (None, 1),
        (None, 1),
        ("attempt_ended", 1),
        ("attempt_started", 2),
        (None, 2),
        (None, 2),
        ("attempt_ended", 2),
    ]
    expected = ["first 0", "first 1", "first 2", "second 0", "second 1"]
    assert [e["msg"] for e in _output(entries)] == expected
    assert [(g.attempt, g.line) for g in stream.read(JOB)] == [
        (1, "first 0"),
        (1, "first 1"),
        (1, "first 2"),
        (2, "second 0"),
        (2, "second 1"),
    ]


def test_size_cap_counts_what_earlier_attempts_wrote(tmp_path: Path) -> None:
    path = tmp_path / "job.log"
    stream = MemoryLogStream()
    max_bytes = 3_000
    with _open(path, stream, attempt=1, max_bytes=max_bytes) as log:
        for i in range(10):  # well under the cap on its own
            log.write(f"first attempt line {i:03d}")
    size_after_first = path.stat().st_size
    assert size_after_first < max_bytes

    with _open(path, stream, attempt=2, max_bytes=max_bytes) as log:
        for i in range(100):
            log.write(f"second attempt line {i:03d}")

    second = [e for e in _entries(path) if e["attempt"] == 2]
    kept = _output(second)
    assert 0 < len(kept) < 100
    assert size_after_first + sum(_bytes(e) for e in kept) <= max_bytes
    assert [e.get("event") for e in second if "event" in e] == [
        "attempt_started",
        "truncated",
        "attempt_ended",
    ]
    assert len([g for g in stream.read(JOB) if g.attempt == 2]) == 100


@pytest.mark.usefixtures("no_timed_flush")
def test_lines_wait_in_the_batch_until_flush(tmp_path: Path) -> None:
    stream = MemoryLogStream()
    log = _open(tmp_path / "job.log", stream)
    try:
        for i in range(10):
            log.write(f"line {i}")
        assert list(stream.read(JOB)) == []

        log.flush()
        assert [g.line for g in stream.read(JOB)] == [f"line {i}" for i in range(10)]

        log.write("later")
        assert len(list(stream.read(JOB))) == 10
    finally:
        log.close("done")

    assert [g.line for g in stream.read(JOB)][-1] == "later"
    assert len(list(stream.read(JOB))) == 11


@pytest.mark.usefixtures("no_timed_flush")
def test_close_sends_the_pending_batch(tmp_path: Path) -> None:
    stream = MemoryLogStream()
    log = _open(tmp_path / "job.log", stream)
    log.write("only line")
    assert list(stream.read(JOB)) == []

    log.close("exited 0")

    assert [g.line for g in stream.read(JOB)] == ["only line"]


@pytest.mark.usefixtures("no_timed_flush")
def test_a_full_batch_is_sent_without_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainq.logs.writer, "_BATCH_LINES", 4)
    stream = MemoryLogStream()
    with _open(tmp_path / "job.log", stream) as log:
        for i in range(3):
            log.write(f"line {i}")
        assert list(stream.read(JOB)) == []

        log.write("line 3")
        assert [g.line for g in stream.read(JOB)] == [f"line {i}" for i in range(4)]

        log.write("line 4")
        assert len(list(stream.read(JOB))) == 4


def test_an_elapsed_flush_interval_sends_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trainq.logs.writer, "_FLUSH_INTERVAL_S", 0.0)
    stream = MemoryLogStream()
    path = tmp_path / "job.log"
    with _open(path, stream) as log:
        log.write("first")
        assert [g.line for g in stream.read(JOB)] == ["first"]
        # A flush also flushes the file, so readers see the line there too.
        assert [e["msg"] for e in _output(_entries(path))] == ["first"]
        log.write("second")
        assert [g.line for g in stream.read(JOB)] == ["first", "second"]


class DyingStream(MemoryLogStream):
    """A stream whose writer is killed (an exception here) before its nth append lands."""

    def __init__(self, dies_at: int) -> None:
        super().__init__()
        self.appends = 0
        self._dies_at = dies_at

    def append(self, job_id: str, lines: list[tuple[int, float, str]], capture: Any = None) -> None:
        self.appends += 1
        if self.appends == self._dies_at:
            raise KeyboardInterrupt("the worker was killed")
        super().append(job_id, lines, capture)


@pytest.mark.usefixtures("no_timed_flush")
def test_a_reattached_log_goes_on_after_the_last_mark_with_every_line_once(
    tmp_path: Path,
) -> None:
    """A supervisor killed between writing its file and its stream leaves lines that only
    the file has; the next one cuts them back and writes them again, from the runtime."""
    path = tmp_path / "job.log"
    stream = DyingStream(dies_at=3)  # 1: the start mark, 2: lines 0-4, 3: lines 5-7
    given = 0
    log = JobLog(
        path, JOB, 1, stream=stream, tail_lines=10, max_bytes=1_000_000,
        position=lambda: str(given),
    )  # fmt: skip
    for given in range(1, 6):
        log.write(f"line {given - 1}")
    log.flush()
    for given in range(6, 9):
        log.write(f"line {given - 1}")
    with pytest.raises(KeyboardInterrupt):
        log.flush()  # the file has lines 5-7 now; the stream never got them
    log._file.close()  # what the kernel does for a killed process

    mark = stream.capture(JOB)
    assert mark is not None and (mark.attempt, mark.lines, mark.position) == (1, 5, "5")
    assert mark.file_bytes < path.stat().st_size

    with JobLog(
        path, JOB, 1, stream=stream, tail_lines=10, max_bytes=1_000_000, resume=mark
    ) as again:
        for n in range(5, 10):  # the runtime's output after position "5"
            again.write(f"line {n}")

    expected = [f"line {n}" for n in range(10)]
    entries = _entries(path)
    assert [e["msg"] for e in _output(entries)] == expected
    assert _events(entries) == ["attempt_started", "attempt_adopted", "attempt_ended"]
    assert "10 lines" in entries[-1]["msg"]
    assert [line.line for line in stream.read(JOB)] == expected


def test_a_new_attempt_after_an_adopted_one_keeps_the_file(tmp_path: Path) -> None:
    """Only a re-attach of the same attempt cuts the file back to the mark."""
    path = tmp_path / "job.log"
    stream = MemoryLogStream()
    with _open(path, stream, attempt=1) as first:
        first.write("one")
    mark = stream.capture(JOB)
    assert mark is not None and mark.file_bytes == path.stat().st_size  # the end is marked

    with JobLog(
        path, JOB, 2, stream=stream, tail_lines=10, max_bytes=1_000_000, resume=mark
    ) as second:
        second.write("two")

    entries = _entries(path)
    assert [e["msg"] for e in _output(entries)] == ["one", "two"]
    assert _events(entries) == ["attempt_started", "attempt_ended"] * 2
