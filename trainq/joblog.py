"""A job's output file: every line of every attempt, attempt boundaries marked."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Self

# Flush at least this often so `tail -f` sees lines while the job runs.
_FLUSH_INTERVAL_S = 0.5


class JobLog:
    """Appends one attempt's output to ``path`` and keeps its last lines in memory."""

    def __init__(self, path: Path, attempt: int, tail_lines: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._flushed_at = time.monotonic()
        self._file.write(f"===== trainq: attempt {attempt} started at {_now()} =====\n")
        self._file.flush()

    def write(self, line: str) -> None:
        self._tail.append(line)
        self._file.write(line + "\n")
        now = time.monotonic()
        if now - self._flushed_at >= _FLUSH_INTERVAL_S:
            self._file.flush()
            self._flushed_at = now

    def tail(self) -> list[str]:
        return list(self._tail)

    def close(self, summary: str) -> None:
        self._file.write(f"===== trainq: {summary} at {_now()} =====\n")
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._file.closed:
            self.close("supervision ended" if exc is None else f"supervision failed: {exc!r}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
