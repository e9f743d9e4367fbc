"""trainq's one log line format, both ways: JSON with ``ts``, ``level``, ``component``,
``job_id``, ``attempt`` and ``msg`` (and any extra fields, e.g. ``event``).

Every component log (``logs/TrainingWorker_YYYYMMDD.log`` ...) and every job's output
file (``logs/jobs/<job_id>.log``) is written in it, and job files are read back with
:func:`decode`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from json.encoder import encode_basestring
from typing import Any


def encode(
    component: str, msg: str, *, level: str = "INFO", job_id: str | None = None,
    attempt: int | None = None, ts: float | None = None, **extra: Any,
) -> str:  # fmt: skip
    """One log line in trainq's format (without the newline)."""
    line = {
        "ts": iso(time.time() if ts is None else ts),
        "level": level,
        "component": component,
        "job_id": job_id,
        "attempt": attempt,
        "msg": msg,
        **extra,
    }
    return json.dumps(line, ensure_ascii=False)


def lines_encoder(
    component: str, *, level: str = "INFO", job_id: str | None = None, attempt: int | None = None
) -> Callable[[list[str], float], bytes]:
    """``encode(component, msg, ts=ts, ...)`` for a batch of lines with the same fields
    and time, newline-terminated, as UTF-8: the same text as one ``encode`` per line,
    with only each ``msg`` encoded per line (a job's output as it is read, a chunk at a
    time; the per-line work was most of the worker's CPU on a chatty job)."""
    fixed = {"level": level, "component": component, "job_id": job_id, "attempt": attempt}
    middle = json.dumps(fixed, ensure_ascii=False)[1:-1]

    def lines(msgs: list[str], ts: float) -> bytes:
        head = f'{{"ts": "{iso(ts)}", {middle}, "msg": '
        return "".join([f"{head}{encode_basestring(msg)}}}\n" for msg in msgs]).encode()

    return lines


@dataclass(frozen=True)
class Decoded:
    """One line of a log file, read back."""

    ts: float
    attempt: int
    msg: str
    event: str | None  # attempt boundaries and markers; None for the job's own output


def decode(text: str) -> Decoded | None:
    """The line's fields, or None when it is not one of trainq's lines."""
    try:
        entry = json.loads(text)
        ts = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        return Decoded(ts, int(entry.get("attempt") or 0), str(entry["msg"]), entry.get("event"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def iso(ts: float) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2026-11-29T10:00:00.000001Z``."""
    return _iso_second(int(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


@lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    """The formatted second, computed once per second rather than once per line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
