"""Each job's output lines in a capped Redis stream, so any host can read and follow it.

Entry fields: ``a`` attempt, ``t`` timestamp (Unix seconds), ``l`` the line. The
stream keeps about ``max_lines`` entries; when older ones were trimmed, readers say
so with a marker instead of pretending the log is whole.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, cast

import redis

from trainq.keys import Keys

_READ_BATCH = 5_000
_Entries = list[tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class LogLine:
    job_id: str
    attempt: int
    ts: float
    line: str
    entry_id: str = ""


class LogStream(Protocol):
    def append(self, job_id: str, lines: list[tuple[int, float, str]]) -> None:
        """Add (attempt, ts, line) entries, trimming the stream to its cap."""

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        """Entries after the entry id ``after`` (all with "-"), oldest first."""

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        """Entries after ``after``, waiting up to ``block_ms`` for the first."""

    def dropped(self, job_id: str) -> int:
        """How many of the job's oldest lines the cap has trimmed away."""


class RedisLogStream:
    def __init__(self, client: redis.Redis, keys: Keys, max_lines: int, retention_s: float) -> None:
        self._redis = client
        self._keys = keys
        self._max_lines = max_lines
        self._retention_s = int(retention_s)

    def append(self, job_id: str, lines: list[tuple[int, float, str]]) -> None:
        if not lines:
            return
        key = self._keys.log(job_id)
        with self._redis.pipeline(transaction=False) as pipe:
            for attempt, ts, line in lines:
                fields = {"a": attempt, "t": repr(ts), "l": line}
                pipe.xadd(key, fields, maxlen=self._max_lines, approximate=True)  # type: ignore[arg-type]
            pipe.expire(key, self._retention_s)  # gone retention after its last line
            pipe.execute()

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        key = self._keys.log(job_id)
        start = after if after == "-" else f"({after}"
        while True:
            batch = cast(_Entries, self._redis.xrange(key, min=start, count=_READ_BATCH))
            for entry_id, fields in batch:
                yield _line(job_id, entry_id, fields)
            if len(batch) < _READ_BATCH:
                return
            start = f"({batch[-1][0]}"

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        key = self._keys.log(job_id)
        reply = cast(
            list[tuple[str, _Entries]],
            self._redis.xread({key: after}, count=_READ_BATCH, block=block_ms),
        )
        if not reply:
            return []
        return [_line(job_id, entry_id, fields) for entry_id, fields in reply[0][1]]

    def dropped(self, job_id: str) -> int:
        try:
            info = cast(dict[str, int], self._redis.xinfo_stream(self._keys.log(job_id)))
        except redis.ResponseError:  # no stream (yet)
            return 0
        return max(int(info.get("entries-added", info["length"])) - int(info["length"]), 0)


class MemoryLogStream:
    """In-memory twin for unit tests (no cap, no blocking)."""

    def __init__(self) -> None:
        self._lines: dict[str, list[LogLine]] = {}
        self._lock = threading.Lock()

    def append(self, job_id: str, lines: list[tuple[int, float, str]]) -> None:
        with self._lock:
            stream = self._lines.setdefault(job_id, [])
            for attempt, ts, line in lines:
                stream.append(LogLine(job_id, attempt, ts, line, f"{len(stream) + 1}-0"))

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        with self._lock:
            lines = list(self._lines.get(job_id, []))
        skip = 0 if after == "-" else int(after.split("-")[0])
        yield from lines[skip:]

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        return list(self.read(job_id, after))

    def dropped(self, job_id: str) -> int:
        return 0


def _line(job_id: str, entry_id: str, fields: dict[str, str]) -> LogLine:
    return LogLine(job_id, int(fields["a"]), float(fields["t"]), fields["l"], entry_id)


def matches(pattern: re.Pattern[str] | None, line: LogLine) -> bool:
    return pattern is None or pattern.search(line.line) is not None
