"""Waiting for a job to be final by reading its record again and again: what the
Python client (from Redis) and the remote CLI (from the API) both do."""

from __future__ import annotations

import time
from collections.abc import Callable

from trainq.errors import WaitTimeout
from trainq.jobs.record import JobRecord


def until_final(
    read: Callable[[], JobRecord],
    *,
    timeout_s: float | None,
    poll_interval_s: float,
    on_update: Callable[[JobRecord], None],
    sleep: Callable[[float], None] = time.sleep,
) -> JobRecord:
    """Read the record every ``poll_interval_s`` until it is final; ``on_update`` sees
    each new version. :class:`~trainq.errors.WaitTimeout` after ``timeout_s``."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = -1.0
    while True:
        record = read()
        if record.updated_at != seen:
            seen = record.updated_at
            on_update(record)
        if record.status.is_terminal:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout(f"job {record.id} still {record.status} after {timeout_s} s")
        sleep(poll_interval_s)
