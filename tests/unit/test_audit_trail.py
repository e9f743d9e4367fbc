"""Audit entries as JSON lines, one file per UTC day, appended whole by many writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from trainq.audit.trail import AuditEntry, AuditTrail
from trainq.store.keys import Keys

# 2024-03-09 23:59:59 UTC and one second later: two UTC days.
LAST_SECOND_OF_DAY = 1_710_028_799.0
# Large enough that a write split into pieces would interleave with another's.
LONG_DETAIL = "x" * 20_000


class StreamStub:
    """The one Redis command the trail's ``record`` sends; what it was sent."""

    def __init__(self) -> None:
        self.added: list[tuple[str, dict[str, str], int]] = []
        self._lock = threading.Lock()

    def xadd(self, key: str, fields: dict[str, str], maxlen: int, approximate: bool) -> str:
        with self._lock:
            self.added.append((key, fields, maxlen))
            return f"{len(self.added)}-0"


def trail(log_dir: Path, stub: StreamStub | None = None) -> AuditTrail:
    client = cast(redis.Redis, stub or StreamStub())
    return AuditTrail(client, Keys("unit:"), log_dir, max_entries=1000)


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """The local time zone 12 hours behind UTC, so a local date is not a UTC date."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT+12"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_an_entry_is_one_compact_json_line_without_empty_fields_or_id() -> None:
    entry = AuditEntry(
        actor="alice", action="cancel", answer=200, target="j1", ts=5.0, id="1-0", detail="é"
    )
    line = entry.to_json()
    assert "\n" not in line and " " not in line
    assert json.loads(line) == {
        "actor": "alice",
        "action": "cancel",
        "answer": 200,
        "target": "j1",
        "detail": "é",
        "ts": 5.0,
    }
    assert AuditEntry(**json.loads(line)) == AuditEntry(**{**entry.__dict__, "id": None})


def test_record_appends_to_the_file_of_the_utc_day_and_to_the_stream(
    tmp_path: Path, far_from_utc: None
) -> None:
    stub = StreamStub()
    audit = trail(tmp_path, stub)
    late = AuditEntry(actor="a", action="submit", answer=202, ts=LAST_SECOND_OF_DAY)
    early = AuditEntry(actor="b", action="cancel", answer=200, ts=LAST_SECOND_OF_DAY + 1)
    audit.record(late)
    audit.record(early)
    audit.record(late)

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "TrainingAudit_20240309.log",
        "TrainingAudit_20240310.log",
    ]
    day1 = (tmp_path / "TrainingAudit_20240309.log").read_text().splitlines()
    day2 = (tmp_path / "TrainingAudit_20240310.log").read_text().splitlines()
    assert day1 == [late.to_json(), late.to_json()]
    assert day2 == [early.to_json()]
    assert [(key, fields["e"]) for key, fields, _ in stub.added] == [
        ("unit:audit", late.to_json()),
        ("unit:audit", early.to_json()),
        ("unit:audit", late.to_json()),
    ]
    assert all(maxlen == 1000 for *_, maxlen in stub.added)


def test_record_makes_the_log_directory(tmp_path: Path) -> None:
    audit = trail(tmp_path / "not" / "yet")
    entry = AuditEntry(actor="a", action="submit", answer=202)
    audit.record(entry)
    assert audit.file_for(entry.ts).read_text() == entry.to_json() + "\n"


def _entries(writer: str, count: int) -> list[AuditEntry]:
    return [
        AuditEntry(
            actor=writer, action="submit", answer=202, target=str(n), detail=LONG_DETAIL, ts=1e9
        )
        for n in range(count)
    ]


def _write(log_dir: str, writer: str, count: int) -> None:
    audit = trail(Path(log_dir))
    for entry in _entries(writer, count):
        audit.record(entry)


def _whole_lines(path: Path) -> dict[str, list[str]]:
    """Every line of ``path`` parsed (a torn line fails), the targets by writer."""
    by_writer: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        values: dict[str, Any] = json.loads(line)
        assert values["detail"] == LONG_DETAIL
        by_writer.setdefault(values["actor"], []).append(values["target"])
    return by_writer


def test_threads_appending_at_once_leave_whole_lines(tmp_path: Path) -> None:
    threads = [
        threading.Thread(target=_write, args=(str(tmp_path), f"t{n}", 100)) for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    by_writer = _whole_lines(trail(tmp_path).file_for(1e9))
    assert by_writer == {f"t{n}": [str(i) for i in range(100)] for n in range(4)}


def test_processes_appending_at_once_leave_whole_lines(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    writers = [spawn.Process(target=_write, args=(str(tmp_path), f"p{n}", 100)) for n in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    by_writer = _whole_lines(trail(tmp_path).file_for(1e9))
    assert by_writer == {f"p{n}": [str(i) for i in range(100)] for n in range(3)}
