"""Recording audit entries off the request path: a thread of its own takes them from a
queue and writes them in batches, so a request never waits for the trail's file or
Redis, and a burst of requests costs one file write and one Redis round trip per batch.

Entries wait in memory for as long as one batch takes (milliseconds); they are written
out when the process exits normally (:func:`atexit`), and only a process killed
outright can lose the last of them. A batch that cannot be written is logged with its
entries' actions and targets, and retried once with the next batch.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable

from trainq.audit.trail import AuditEntry, AuditTrail

logger = logging.getLogger("trainq.audit")

BATCH_ENTRIES = 500


class AuditWriter:
    """Takes entries (:meth:`put`, never blocks) and records them on its thread."""

    def __init__(self, trail: Callable[[], AuditTrail]) -> None:
        self._trail = trail
        self._queue: queue.SimpleQueue[AuditEntry] = queue.SimpleQueue()
        self._pending = 0  # put and not yet recorded (or given up on)
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._retry: list[AuditEntry] = []

    def put(self, entry: AuditEntry) -> None:
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        self._queue.put(entry)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every entry put so far is recorded; False if ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending:
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    return False
                self._lock.wait(left_s)
        return True

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < BATCH_ENTRIES:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)
            with self._lock:
                self._pending -= len(batch)
                self._lock.notify_all()

    def _write(self, batch: list[AuditEntry]) -> None:
        retried, self._retry = self._retry, []
        try:
            self._trail().record_many([*retried, *batch])
        except Exception as exc:  # never lost silently: logged, and tried once more
            what = ", ".join(f"{e.action} {e.target or ''}".strip() for e in batch[:20])
            logger.error("could not record %d audit entries (%s): %s", len(batch), what, exc)
            if not retried:
                self._retry = batch
