"""Each job's output lines in a capped Redis stream, so any host can read and follow it.

An entry holds up to ``LINES_PER_ENTRY`` consecutive lines of one attempt (one entry
per line would make the Redis client the bottleneck of a chatty job): fields ``a``
attempt, ``t`` time of its first line (Unix seconds), ``n`` line count, ``o`` offset
of its first line among all the job's lines, ``i`` index of its first line among its
attempt's lines (entries written before ``i`` existed lack it), ``l`` the lines joined
by newlines.
The stream keeps about ``max_lines // LINES_PER_ENTRY`` entries: about ``max_lines``
lines of a chatty job, fewer of one that prints slowly. Readers learn from the
first entry's offset how many lines were trimmed, and say so.

Each append also records, in the same call, how far the job's output has been
captured (:class:`Capture`): a supervisor that re-attaches to a running attempt
after its predecessor died resumes from there, so no line is stored twice. The mark
also numbers the lines: the appended lines of its attempt are that attempt's last ones
before the mark, so their indices end at ``capture.lines - 1``. A reader joins the
stream to older copies of an attempt (its log file, its archive) by these indices.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Protocol, cast

import redis

from trainq.store.keys import Keys

_READ_BATCH = 500  # entries
_ATTEMPT, _LINE = itemgetter(0), itemgetter(2)  # of an (attempt, ts, line) entry
LINES_PER_ENTRY = 100
# Appends entries (attempt, ts, count, attempt index or '', lines), numbering their lines
# with the job's line counter, then trims; and records the capture mark (attempt, lines,
# runtime position, file size) when given.
_APPEND = """
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], 'a', ARGV[3], 'n', ARGV[4], 'p', ARGV[5], 'f', ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
local k = 7
while k <= #ARGV do
  local n = tonumber(ARGV[k + 2])
  local total = redis.call('INCRBY', KEYS[2], n)
  if ARGV[k + 3] == '' then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
               'a', ARGV[k], 't', ARGV[k + 1], 'n', n, 'o', total - n, 'l', ARGV[k + 4])
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'a', ARGV[k], 't', ARGV[k + 1],
               'n', n, 'o', total - n, 'i', ARGV[k + 3], 'l', ARGV[k + 4])
  end
  k = k + 5
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
    index: int | None = None  # among its attempt's lines, from 0; None: not known


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
        ``capture`` in the same step (its attempt's lines are numbered up to it)."""

    def capture(self, job_id: str) -> Capture | None:
        """The last capture mark appended, if any."""

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        """Entries after the entry id ``after`` (all with "-"), oldest first."""

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        """Entries after ``after``, waiting up to ``block_ms`` for the first (0: not at
        all)."""

    def last(self, job_id: str, entries: int, after: str | None = None) -> list[LogLine]:
        """The lines of the newest ``entries`` entries (of those after the entry id
        ``after``, when given), oldest first: a tail's read."""

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
        for attempt, index, chunk in _chunks(lines, capture):
            text = "\n".join(map(_LINE, chunk))
            args += [attempt, repr(chunk[0][1]), len(chunk), "" if index is None else index, text]
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
            self._redis.xread({key: after}, count=_READ_BATCH, block=block_ms or None),
        )
        if not reply:
            return []
        return [
            line for entry_id, fields in reply[0][1] for line in _lines(job_id, entry_id, fields)
        ]

    def last(self, job_id: str, entries: int, after: str | None = None) -> list[LogLine]:
        key = self._keys.log(job_id)
        oldest = "-" if after is None else f"({after}"
        batch = cast(_Entries, self._redis.xrevrange(key, "+", oldest, count=entries))
        newest = reversed(batch)
        return [line for entry_id, fields in newest for line in _lines(job_id, entry_id, fields)]

    def dropped(self, job_id: str) -> int:
        first = cast(_Entries, self._redis.xrange(self._keys.log(job_id), count=1))
        return int(first[0][1]["o"]) if first else 0


class MemoryLogStream:
    """In-memory twin for unit tests (no blocking). ``max_lines`` caps each job's stream
    exactly, to the line (the real one trims whole entries, about as many)."""

    def __init__(self, max_lines: int | None = None) -> None:
        self._lines: dict[str, list[LogLine]] = {}
        self._appended: dict[str, int] = {}  # each job's line counter
        self._captures: dict[str, Capture] = {}
        self._max_lines = max_lines
        self._lock = threading.Lock()

    def append(
        self, job_id: str, lines: list[tuple[int, float, str]], capture: Capture | None = None
    ) -> None:
        with self._lock:
            stream = self._lines.setdefault(job_id, [])
            for attempt, first, chunk in _chunks(lines, capture):
                for k, (_, ts, line) in enumerate(chunk):
                    number = self._appended.get(job_id, 0) + 1
                    self._appended[job_id] = number
                    index = None if first is None else first + k
                    stream.append(LogLine(job_id, attempt, ts, line, f"{number}-0", index))
            if self._max_lines is not None:
                del stream[: max(len(stream) - self._max_lines, 0)]
            if capture is not None:
                self._captures[job_id] = capture

    def capture(self, job_id: str) -> Capture | None:
        with self._lock:
            return self._captures.get(job_id)

    def read(self, job_id: str, after: str = "-") -> Iterator[LogLine]:
        with self._lock:
            lines = list(self._lines.get(job_id, []))
        seen = 0 if after == "-" else int(after.split("-")[0])
        yield from (line for line in lines if int(line.entry_id.split("-")[0]) > seen)

    def follow(self, job_id: str, after: str, block_ms: int) -> list[LogLine]:
        return list(self.read(job_id, after))

    def last(self, job_id: str, entries: int, after: str | None = None) -> list[LogLine]:
        with self._lock:  # as many lines as that many full entries of the real stream
            newest = list(self._lines.get(job_id, []))[-entries * LINES_PER_ENTRY :]
        seen = 0 if after is None else int(after.split("-")[0])
        return [line for line in newest if int(line.entry_id.split("-")[0]) > seen]

    def dropped(self, job_id: str) -> int:
        with self._lock:
            return self._appended.get(job_id, 0) - len(self._lines.get(job_id, []))


def _lines(job_id: str, entry_id: str, fields: dict[str, str]) -> Iterator[LogLine]:
    attempt, ts = int(fields["a"]), float(fields["t"])
    first = int(fields["i"]) if "i" in fields else None
    for k, line in enumerate(fields["l"].split("\n")):
        yield LogLine(job_id, attempt, ts, line, entry_id, None if first is None else first + k)


def _chunks(
    lines: list[tuple[int, float, str]], capture: Capture | None
) -> Iterator[tuple[int, int | None, list[tuple[int, float, str]]]]:
    """Runs of at most LINES_PER_ENTRY consecutive lines of the same attempt, each with
    the attempt index of its first line: known for the capture mark's attempt only."""
    runs: list[list[tuple[int, float, str]]] = []
    for _attempt, same in groupby(lines, key=_ATTEMPT):  # consecutive lines of one attempt
        run = list(same)
        runs += [run[k : k + LINES_PER_ENTRY] for k in range(0, len(run), LINES_PER_ENTRY)]
    numbered = None if capture is None else capture.attempt
    if capture is None:
        index = 0
    else:
        index = capture.lines - sum(len(run) for run in runs if run[0][0] == numbered)
    for run in runs:
        if run[0][0] == numbered:
            yield run[0][0], index, run
            index += len(run)
        else:
            yield run[0][0], None, run
