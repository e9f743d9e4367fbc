"""JsonFileLog: a container's json-file log read from disk, through rotations."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from trainq.runtime.jsonfile import JsonFileLog, readable


def entry(text: str, newline: bool = True) -> bytes:
    log = text + ("\n" if newline else "")
    return (
        json.dumps({"log": log, "stream": "stdout", "time": "2026-11-29T00:00:00Z"}) + "\n"
    ).encode()


def test_reads_every_line_across_rotations_in_order(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    log.write_bytes(b"".join(entry(f"line {i}") for i in range(3)))
    ended = threading.Event()
    reader = JsonFileLog(log, ended)
    lines = reader.lines()
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
    got = list(JsonFileLog(log, ended).lines())

    assert got == ["aaaaabbbbb", "crlf", "tail"]


def test_only_readable_paths_are_used(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    assert readable(str(log)) is None and readable(None) is None
    log.write_bytes(b"")
    assert readable(str(log)) == log
