"""One log format for every component: JSON lines with ts, level, component, job_id,
attempt and msg.

Component logs go to ``<log_dir>/<Component>_YYYYMMDD.log`` (a new file each day),
e.g. ``logs/TrainingWorker_20261129.log``. The job and attempt being supervised
are attached to every record logged while they are (:func:`job_context`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

_JOB: contextvars.ContextVar[tuple[str | None, int | None]] = contextvars.ContextVar(
    "trainq_job", default=(None, None)
)
COMPONENT_FILES = {"worker": "TrainingWorker", "cli": "TrainingAgent", "api": "TrainingApi"}


def record(
    component: str, msg: str, *, level: str = "INFO", job_id: str | None = None,
    attempt: int | None = None, ts: float | None = None, **extra: Any,
) -> str:  # fmt: skip
    """One log line in trainq's format (without the newline)."""
    line = {
        "ts": _iso(time.time() if ts is None else ts),
        "level": level,
        "component": component,
        "job_id": job_id,
        "attempt": attempt,
        "msg": msg,
        **extra,
    }
    return json.dumps(line, ensure_ascii=False)


def line_formatter(
    component: str, *, level: str = "INFO", job_id: str | None = None, attempt: int | None = None
) -> Callable[[str, float], str]:
    """``record(component, msg, ts=ts, ...)`` for many lines with the same fields: the
    same text, with only ``ts`` and ``msg`` encoded per line (a job's output line by
    line; the per-line ``json.dumps`` was a third of the worker's time on a chatty job)."""
    fixed = {"level": level, "component": component, "job_id": job_id, "attempt": attempt}
    middle = json.dumps(fixed, ensure_ascii=False)[1:-1]

    def line(msg: str, ts: float) -> str:
        return f'{{"ts": "{_iso(ts)}", {middle}, "msg": {encode_basestring(msg)}}}'

    return line


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
        return record(
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


def _iso(ts: float) -> str:
    return _iso_second(int(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


@lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    """The formatted second, computed once per second rather than once per line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
