"""Log retention: compress logs that stopped growing, delete what is past retention.

Job logs (``<log_dir>/jobs/*.log``) and daily component logs untouched for a day are
gzipped in place (``.log.gz``); compressed logs older than ``retention_days`` are
deleted. Each worker's reconciler runs a sweep on its pass.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# A log untouched for this long is finished: its job or its day is over.
IDLE_BEFORE_COMPRESSION_S = 86_400.0


@dataclass
class Sweep:
    compressed: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)


def sweep(
    log_dir: Path,
    retention_days: float,
    now: float | None = None,
    still_written: Callable[[Path], bool] = lambda _: False,
) -> Sweep:
    """Compress idle logs and delete old compressed ones; ``still_written`` spares a log
    that may yet grow (a job that is not final, however long it was silent)."""
    now = time.time() if now is None else now
    done = Sweep()
    for folder in (log_dir, log_dir / "jobs"):
        if not folder.is_dir():
            continue
        for path in folder.glob("*.log"):
            idle = now - path.stat().st_mtime >= IDLE_BEFORE_COMPRESSION_S
            if idle and not still_written(path):
                done.compressed.append(_compress(path))
        for path in folder.glob("*.log.gz"):
            if now - path.stat().st_mtime >= retention_days * 86_400:
                path.unlink(missing_ok=True)
                done.deleted.append(path)
    return done


def _compress(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    partial = target.with_name(target.name + ".tmp")
    with path.open("rb") as src, gzip.open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst)
    stat = path.stat()
    partial.replace(target)
    # Keep the log's own age, so retention counts from its last line, not from today.
    os.utime(target, (stat.st_atime, stat.st_mtime))
    path.unlink()
    return target


def open_log(path: Path) -> Path | None:
    """The log file, or its compressed form, whichever exists."""
    if path.is_file():
        return path
    packed = path.with_name(path.name + ".gz")
    return packed if packed.is_file() else None
