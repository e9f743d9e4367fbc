"""Failure classes: what a failed attempt means for its job.

**transient** (a preemption after checkpointing, exit 75; a worker or the runtime
lost) is retried, up to the job's ``max_retries``, resuming from its checkpoint;
**permanent** (any other non-zero exit, an OOM kill, a command or image that cannot
start, a time limit) ends the job at once; **preempted** (the scheduler asked it to
yield to a higher-priority job) sends it back to pending, not counted as a retry. How
an exit is classified is the worker's (:mod:`trainq.worker.endings`).
"""

from __future__ import annotations

from enum import StrEnum


class FailureClass(StrEnum):
    TRANSIENT = "transient"  # retried: the job resumes from its last checkpoint
    PERMANENT = "permanent"  # the job fails at once: retrying would fail the same way
    # Asked to yield to a higher-priority job (trainq.scheduler): the job is pending
    # again with its original age; not a retry, it does not count against max_retries.
    PREEMPTED = "preempted"
