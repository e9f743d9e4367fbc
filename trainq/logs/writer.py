"""A job's output: every line of every attempt, kept in two places.

Locally, ``<log_dir>/jobs/<job_id>.log`` holds JSON lines in trainq's one log format
(``component: "job"``, the line in ``msg``), attempt boundaries marked with an
``event`` record; past ``job_log_max_bytes`` a visible truncation marker is written
and further lines are only counted. Remotely, the same lines go in batches to the
job's capped Redis stream, so ``trainq logs`` works from any host.

Each batch is written to the file first, then appended to the stream together with
a :class:`~trainq.logs.stream.Capture` mark: the attempt's line count, the runtime's
position after the batch and the file's size. A supervisor that re-attaches to a
running attempt (its predecessor was killed) cuts the file back to the last mark and
asks the runtime for the output after the mark's position, so every line is stored
exactly once, in order, in both places.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from trainq.logs.format import encode, lines_encoder
from trainq.logs.stream import Capture, LogStream

# Lines are flushed (file and stream) at least this often, and in batches this big.
_FLUSH_INTERVAL_S = 0.2
_BATCH_LINES = 2_000


class JobLog:
    """Captures one attempt's output; keeps its last lines for the error message.

    ``position`` tells where the runtime's output stands after the last line written;
    ``resume`` is the last capture mark of a job whose attempt is being re-attached.
    """

    def __init__(
        self,
        path: Path,
        job_id: str,
        attempt: int,
        *,
        stream: LogStream,
        tail_lines: int,
        max_bytes: int,
        position: Callable[[], str | None] = lambda: None,
        resume: Capture | None = None,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.job_id = job_id
        self.attempt = attempt
        self.lines = 0
        self._stream = stream
        self._position = position
        self._max_bytes = max_bytes
        if resume is not None:
            _cut_back(path, resume.file_bytes)
        self._file = path.open("ab")
        self._written = path.stat().st_size
        self._truncated = False
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._batch: list[tuple[int, float, str]] = []
        self._flushed_at = time.monotonic()
        self._format = lines_encoder("job", job_id=job_id, attempt=attempt)
        if resume is not None and resume.attempt == attempt:
            self.lines = resume.lines
            self._event(
                "attempt_adopted", f"attempt {attempt} re-attached after {self.lines} lines"
            )
        else:
            self._event("attempt_started", f"attempt {attempt} started")
        self.flush()

    def write(self, line: str) -> None:
        self.write_many([line])

    def write_many(self, lines: list[str]) -> None:
        """Lines read together (one chunk of the output): captured at one time, written
        to the file in one go."""
        if not lines:
            return
        now = time.time()
        self.lines += len(lines)
        self._tail.extend(lines)
        attempt = self.attempt
        self._batch += [(attempt, now, line) for line in lines]
        if not self._truncated:
            data = self._format(lines, now)
            if self._written + len(data) > self._max_bytes:
                self._write_until_full(lines, now)
            else:
                self._written += len(data)
                self._file.write(data)
        if len(self._batch) >= _BATCH_LINES or (
            time.monotonic() - self._flushed_at >= _FLUSH_INTERVAL_S
        ):
            self.flush()

    def flush(self) -> None:
        """Write the batch to the file, then to the stream with the capture mark (whose
        line count also numbers the batch's lines within the attempt: a re-attached
        attempt's indices go on from its predecessor's last mark)."""
        self._file.flush()
        batch, self._batch = self._batch, []
        mark = Capture(self.attempt, self.lines, self._position(), self._file.tell())
        self._stream.append(self.job_id, batch, mark)
        self._flushed_at = time.monotonic()

    def tail(self) -> list[str]:
        return list(self._tail)

    def close(self, summary: str) -> None:
        self._event("attempt_ended", f"{summary} ({self.lines} lines)")
        self.flush()  # the last lines, and a mark after the end marker: never cut back
        self._file.close()

    def _write_until_full(self, lines: list[str], now: float) -> None:
        """Line by line until the file would pass its size limit, then the marker."""
        for line in lines:
            data = self._format([line], now)
            if self._written + len(data) > self._max_bytes:
                self._truncate()
                return
            self._written += len(data)
            self._file.write(data)

    def _truncate(self) -> None:
        self._truncated = True
        self._event(
            "truncated",
            f"log truncated: over {self._max_bytes} bytes; further lines are only counted "
            "(the last ones are in the job's Redis stream)",
        )

    def _event(self, event: str, msg: str) -> None:
        line = encode("job", msg, job_id=self.job_id, attempt=self.attempt, event=event) + "\n"
        data = line.encode("utf-8")
        self._written += len(data)
        self._file.write(data)
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


def _cut_back(path: Path, size: int) -> None:
    """Drop what a killed supervisor wrote to the file after its last capture mark:
    those lines were never in the stream, and the re-attached output gives them again."""
    try:
        if path.stat().st_size > size:
            with path.open("r+b") as file:
                file.truncate(size)
    except FileNotFoundError:
        pass
