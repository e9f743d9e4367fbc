"""A job's output: every line of every attempt, kept in two places.

Locally, ``<log_dir>/jobs/<job_id>.log`` holds JSON lines in trainq's one log format
(``component: "job"``, the line in ``msg``), attempt boundaries marked with an
``event`` record; past ``job_log_max_bytes`` a visible truncation marker is written
and further lines are only counted. Remotely, the same lines go in batches to the
job's capped Redis stream, so ``trainq logs`` works from any host.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Self

from trainq.logs import line_formatter, record
from trainq.logstream import LogStream

# Lines are flushed (file and stream) at least this often, and in batches this big.
_FLUSH_INTERVAL_S = 0.2
_BATCH_LINES = 2_000


class JobLog:
    """Captures one attempt's output; keeps its last lines for the error message."""

    def __init__(
        self,
        path: Path,
        job_id: str,
        attempt: int,
        *,
        stream: LogStream,
        tail_lines: int,
        max_bytes: int,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.job_id = job_id
        self.attempt = attempt
        self.lines = 0
        self._stream = stream
        self._max_bytes = max_bytes
        self._file = path.open("a", encoding="utf-8")
        self._written = path.stat().st_size
        self._truncated = False
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._batch: list[tuple[int, float, str]] = []
        self._flushed_at = time.monotonic()
        self._format = line_formatter("job", job_id=job_id, attempt=attempt)
        self._event("attempt_started", f"attempt {attempt} started")

    def write(self, line: str) -> None:
        now = time.time()
        self.lines += 1
        self._tail.append(line)
        self._batch.append((self.attempt, now, line))
        if not self._truncated:
            text = self._format(line, now) + "\n"
            self._written += len(text.encode("utf-8"))
            if self._written > self._max_bytes:
                self._truncate()
            else:
                self._file.write(text)
        if len(self._batch) >= _BATCH_LINES or (
            time.monotonic() - self._flushed_at >= _FLUSH_INTERVAL_S
        ):
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        batch, self._batch = self._batch, []
        self._stream.append(self.job_id, batch)
        self._flushed_at = time.monotonic()

    def tail(self) -> list[str]:
        return list(self._tail)

    def close(self, summary: str) -> None:
        self.flush()
        self._event("attempt_ended", f"{summary} ({self.lines} lines)")
        self._file.close()

    def _truncate(self) -> None:
        self._truncated = True
        self._event(
            "truncated",
            f"log truncated: over {self._max_bytes} bytes; further lines are only counted "
            "(the last ones are in the job's Redis stream)",
        )

    def _event(self, event: str, msg: str) -> None:
        line = record("job", msg, job_id=self.job_id, attempt=self.attempt, event=event) + "\n"
        self._written += len(line.encode("utf-8"))
        self._file.write(line)
        self._file.flush()

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
