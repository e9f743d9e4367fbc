"""Component logs (worker, API, CLI) in trainq's one format (:mod:`trainq.logs.format`).

Component logs go to ``<log_dir>/<Component>_YYYYMMDD.log`` (a new file each day),
e.g. ``logs/TrainingWorker_20261129.log``. The job and attempt being supervised
are attached to every record logged while they are (:func:`job_context`).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trainq.logs.format import encode

_JOB: contextvars.ContextVar[tuple[str | None, int | None]] = contextvars.ContextVar(
    "trainq_job", default=(None, None)
)
COMPONENT_FILES = {"worker": "TrainingWorker", "cli": "TrainingAgent", "api": "TrainingApi"}


@contextmanager
def job_context(job_id: str, attempt: int | None = None) -> Iterator[None]:
    """Attach ``job_id`` (and ``attempt``) to everything logged inside the block."""
    token = _JOB.set((job_id, attempt))
    try:
        yield
    finally:
        _JOB.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, rec: logging.LogRecord) -> str:
        job_id, attempt = _JOB.get()
        msg = rec.getMessage()
        if rec.exc_info:
            msg += "\n" + self.formatException(rec.exc_info)
        return encode(
            self.component, msg, level=rec.levelname, job_id=job_id, attempt=attempt,
            ts=rec.created, logger=rec.name,
        )  # fmt: skip


class DailyFileHandler(logging.Handler):
    """Appends to ``<folder>/<stem>_YYYYMMDD.log``, switching files at midnight (UTC)."""

    def __init__(self, folder: Path, stem: str) -> None:
        super().__init__()
        self.folder = folder
        self.stem = stem
        self._day = ""
        self._stream: Any = None

    def emit(self, rec: logging.LogRecord) -> None:
        try:
            day = time.strftime("%Y%m%d", time.gmtime(rec.created))
            if day != self._day:
                self._open(day)
            self._stream.write(self.format(rec) + "\n")
            self._stream.flush()
        except Exception:
            self.handleError(rec)

    def _open(self, day: str) -> None:
        if self._stream is not None:
            self._stream.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._stream = (self.folder / f"{self.stem}_{day}.log").open("a", encoding="utf-8")
        self._day = day

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        super().close()


def configure(component: str, log_dir: Path, level: int = logging.INFO) -> Path:
    """Send trainq's and Celery's records to the component's daily JSON log; its folder."""
    handler = DailyFileHandler(log_dir, COMPONENT_FILES.get(component, component))
    handler.setFormatter(JsonFormatter(component))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, DailyFileHandler)]:
        root.removeHandler(old)  # one component per process: the worker command was the CLI
        old.close()
    root.addHandler(handler)
    root.setLevel(min(root.level or level, level))
    return log_dir
