"""Job statuses and the one transition map that every store write is checked against."""

from __future__ import annotations

from enum import StrEnum

from trainq.errors import IllegalTransition


class JobStatus(StrEnum):
    # recorded; waiting to be admitted by the scheduler, or sent and waiting for a worker
    # (again after a preemption: running -> queued)
    QUEUED = "queued"
    RUNNING = "running"  # an attempt's container/process is being supervised
    RETRYING = "retrying"  # an attempt failed transiently; the next one is due
    SUCCEEDED = "succeeded"  # terminal: the last attempt exited 0
    FAILED = "failed"  # terminal: a permanent failure, or retries ran out
    CANCELLED = "cancelled"  # terminal: stopped on a user's request
    TIMED_OUT = "timed_out"  # terminal: stopped by the job's own time limit

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]


TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.TIMED_OUT,
            JobStatus.RETRYING,
            JobStatus.QUEUED,  # preempted: pending again (trainq.scheduler)
        }
    ),
    JobStatus.RETRYING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.TIMED_OUT: frozenset(),
}


def check_transition(current: JobStatus, new: JobStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is in the map.

    Writing the same non-terminal status again is allowed (a progress update while
    running); a terminal record is never written again.
    """
    if new in TRANSITIONS[current] or (new == current and not current.is_terminal):
        return
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "none: it is final"
    raise IllegalTransition(f"job status {current} cannot become {new} (allowed: {allowed})")
