"""JsonFileOutput: a container's json-file log read from disk, through rotations."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from trainq.runtime.container_logs import stamp_ns
from trainq.runtime.json_file import JsonFileOutput, readable


def entry(text: str, newline: bool = True, time: str = "2026-11-29T00:00:00Z") -> bytes:
    log = text + ("\n" if newline else "")
    return (json.dumps({"log": log, "stream": "stdout", "time": time}) + "\n").encode()


def test_reads_every_line_across_rotations_in_order(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(b"".join(entry(f"line {i}") for i in range(3)))
    ended = threading.Event()
    reader = JsonFileOutput(log, ended)
    lines = iter(reader)
    got = [next(lines) for _ in range(3)]

    # What dockerd does on rotation, twice, while the reader is between files.
    with log.open("ab") as f:
        f.write(entry("line 3"))  # written just before the first rotation
    log.rename(tmp_path / "c-json.log.1")
    log.write_bytes(entry("line 4") + entry("line 5"))
    (tmp_path / "c-json.log.1").rename(tmp_path / "c-json.log.2")
    log.rename(tmp_path / "c-json.log.1")
    log.write_bytes(entry("line 6"))
    ended.set()
    got += list(lines)

    assert got == [f"line {i}" for i in range(7)]


def test_long_lines_in_parts_are_joined_and_a_last_partial_line_is_kept(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(
        entry("a" * 5, newline=False) + entry("b" * 5) + entry("crlf\r") + entry("tail", False)
    )

    ended = threading.Event()
    ended.set()
    got = list(JsonFileOutput(log, ended))

    assert got == ["aaaaabbbbb", "crlf", "tail"]


def test_only_readable_paths_are_used(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    assert readable(str(log)) is None and readable(None) is None
    log.write_bytes(b"")
    assert readable(str(log)) == log


def test_a_reader_resumes_after_anothers_position_without_a_line_twice(tmp_path: Path) -> None:
    """Lines with the same engine timestamp are told apart by how many came before."""
    log = tmp_path / "c-json.log"
    stamps = ["2026-11-29T00:00:01.5Z", "2026-11-29T00:00:01.5Z", "2026-11-29T00:00:01.5Z"]
    stamps += ["2026-11-29T00:00:01.500000001Z", "2026-11-29T00:00:02Z"]
    entries = [entry(f"line {i}", time=t) for i, t in enumerate(stamps)]
    log.write_bytes(b"".join(entries[:2]))
    ended = threading.Event()
    first = JsonFileOutput(log, ended)
    batches = first.batches()
    got = next(batches)  # what was written so far: one batch
    batches.close()  # the first reader stops here (its worker was killed)
    position = first.position
    assert got == ["line 0", "line 1"] and position == f"{stamp_ns(stamps[0])}#2"
    with log.open("ab") as f:
        f.write(b"".join(entries[2:]))
    ended.set()

    resumed = JsonFileOutput(log, ended, after=position)
    assert resumed.position == position  # nothing given yet: still where the first stopped
    got += list(resumed)

    assert got == [f"line {i}" for i in range(5)]
    assert resumed.position == f"{stamp_ns(stamps[4])}#1"


def test_engine_timestamps_keep_their_nanoseconds() -> None:
    assert stamp_ns("1970-01-01T00:00:01.000000002Z") == 1_000_000_002
    assert stamp_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert stamp_ns("1970-01-01T00:00:01Z") == 1_000_000_000
    assert stamp_ns("not a time") is None


def test_entries_the_engine_did_not_write_are_lines_of_their_own(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(
        entry('ünïcödé ✓ "quoted"')
        + b"not json at all\n"
        + b"42\n"  # JSON, but not an entry
        + b'{"log": "bad \xff byte\\n", "stream": "stdout", "time": "2026-11-29T00:00:01Z"}\n'
        + entry("last")
    )
    ended = threading.Event()
    ended.set()

    got = list(JsonFileOutput(log, ended))

    assert got == ['ünïcödé ✓ "quoted"', "not json at all", "42", "bad \ufffd byte", "last"]


def test_the_position_counts_the_lines_of_one_time_across_batches(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    t = "2026-11-29T00:00:01.5Z"
    log.write_bytes(entry("a", time=t) + entry("b", time=t))
    reader = JsonFileOutput(log, threading.Event())
    batches = reader.batches()
    assert next(batches) == ["a", "b"]

    # A long line in parts: its time is its last part's.
    with log.open("ab") as f:
        f.write(entry("c", newline=False, time="2026-11-29T00:00:09Z") + entry("d\r", time=t))
    assert next(batches) == ["cd"]
    assert reader.position == f"{stamp_ns(t)}#3"
    batches.close()
