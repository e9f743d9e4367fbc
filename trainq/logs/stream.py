"""Each job's output lines in a capped Redis stream, so any host can read and follow it.

An entry holds up to ``LINES_PER_ENTRY`` consecutive lines of one attempt (one entry
per line would make the Redis client the bottleneck of a chatty job): fields ``a``
attempt, ``t`` time of its first line (Unix seconds), ``n`` line count, ``o`` offset
of its first line among all the job's lines, ``l`` the lines joined by newlines.
The stream keeps about ``max_lines // LINES_PER_ENTRY`` entries: about ``max_lines``
lines of a chatty job, fewer of one that prints slowly. Readers learn from the
first entry's offset how many lines were trimmed, and say so.

Each append also records, in the same call, how far the job's output has been
captured (:class:`Capture`): a supervisor that re-attaches to a running attempt
after its predecessor died resumes from there, so no line is stored twice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, cast

import redis

from trainq.store.keys import Keys

_READ_BATCH = 500  # entries
LINES_PER_ENTRY = 100
# Appends entries, numbering their lines with the job's line counter, then trims; and
# records the capture mark (attempt, lines, runtime position, file size) when given.
_APPEND = """
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], 'a', ARGV[3], 'n', ARGV[4], 'p', ARGV[5], 'f', ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
local i = 7
while i <= #ARGV do
  local n = tonumber(ARGV[i + 2])
  local total = redis.call('INCRBY', KEYS[2], n)
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
             'a', ARGV[i], 't', ARGV[i + 1], 'n', n, 'o', total - n, 'l', ARGV[i + 3])
  i = i + 4
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 0
"""
_Entries = list[tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class LogLine:
    job_id: str
    attempt: int
    ts: float
    line: str
    entry_id: str = ""


@dataclass(frozen=True)
class Capture:
    """How far a job's output was stored: written with the lines it counts."""

    attempt: int
    lines: int  # of that attempt
    position: str | None  # the runtime's place after the last of them (Runtime.output)
    file_bytes: int  # the job's log file's size after them


class LogStream(Protocol):
    def append(
        self, job_id: str, lines: list[tuple[int, float, str]], capture: Capture | None = None
    ) -> None:
        """Add (attempt, ts, line) entries, trimming the stream to its cap; and record
        ``capture`` in the same step."""

    def capture(self, job_id: str) -> Capture | None:
        """The last capture mark appended, if any."""

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
        self._max_entries = max(max_lines // LINES_PER_ENTRY, 1)
        self._retention_s = int(retention_s)  # gone this long after its last line
        self._append = client.register_script(_APPEND)

    def append(
        self, job_id: str, lines: list[tuple[int, float, str]], capture: Capture | None = None
    ) -> None:
        if not lines and capture is None:
            return
        args: list[str | int] = [self._max_entries, self._retention_s]
        if capture is None:
            args += ["", "", "", ""]
        else:
            args += [capture.attempt, capture.lines, capture.position or "", capture.file_bytes]
        for attempt, chunk in _chunks(lines):
            args += [attempt, repr(chunk[0][1]), len(chunk), "\n".join(c[2] for c in chunk)]
        keys = [self._keys.log(job_id), self._keys.log_lines(job_id), self._keys.capture(job_id)]
        self._append(keys=keys, args=args)

    def capture(self, job_id: str) -> Capture | None:
        mark = cast(dict[str, str], self._redis.hgetall(self._keys.capture(job_id)))
        if not mark:
            return None
        return Capture(int(mark["a"]), int(mark["n"]), mark["p"] or None, int(mark["f"]))

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        key = self._keys.log(job_id)
        start = after if after == "-" else f"({after}"
        while True:
            batch = cast(_Entries, self._redis.xrange(key, min=start, count=_READ_BATCH))
            for entry_id, fields in batch:
                yield from _lines(job_id, entry_id, fields)
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
        return [
            line for entry_id, fields in reply[0][1] for line in _lines(job_id, entry_id, fields)
        ]

    def dropped(self, job_id: str) -> int:
        first = cast(_Entries, self._redis.xrange(self._keys.log(job_id), count=1))
        return int(first[0][1]["o"]) if first else 0


class MemoryLogStream:
    """In-memory twin for unit tests (no cap, no blocking)."""

    def __init__(self) -> None:
        self._lines: dict[str, list[LogLine]] = {}
        self._captures: dict[str, Capture] = {}
        self._lock = threading.Lock()

    def append(
        self, job_id: str, lines: list[tuple[int, float, str]], capture: Capture | None = None
    ) -> None:
        with self._lock:
            stream = self._lines.setdefault(job_id, [])
            for attempt, ts, line in lines:
                stream.append(LogLine(job_id, attempt, ts, line, f"{len(stream) + 1}-0"))
            if capture is not None:
                self._captures[job_id] = capture

    def capture(self, job_id: str) -> Capture | None:
        with self._lock:
            return self._captures.get(job_id)

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        with self._lock:
            lines = list(self._lines.get(job_id, []))
        skip = 0 if after == "-" else int(after.split("-")[0])
        yield from lines[skip:]

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        return list(self.read(job_id, after))

    def dropped(self, job_id: str) -> int:
        return 0


def _lines(job_id: str, entry_id: str, fields: dict[str, str]) -> Iterator[LogLine]:
    attempt, ts = int(fields["a"]), float(fields["t"])
    for line in fields["l"].split("\n"):
        yield LogLine(job_id, attempt, ts, line, entry_id)


def _chunks(
    lines: list[tuple[int, float, str]],
) -> Iterator[tuple[int, list[tuple[int, float, str]]]]:
    """Runs of at most LINES_PER_ENTRY consecutive lines of the same attempt."""
    chunk: list[tuple[int, float, str]] = []
    for item in lines:
        if chunk and (item[0] != chunk[0][0] or len(chunk) == LINES_PER_ENTRY):
            yield chunk[0][0], chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk[0][0], chunk
