"""How an attempt ended, classified (:class:`~trainq.jobs.failures.FailureClass`).

**transient**: a preemption after checkpointing (exit 75), a worker or the runtime
lost; retried. **preempted**: stopped because the scheduler asked it to yield; pending
again, not a retry. **permanent**: any other non-zero exit, an OOM kill, a command or
image that cannot start; the job ends at once. A stop by the job's time limit or a
user's cancel ends the job in that status, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainq.jobs.failures import FailureClass
from trainq.jobs.progress import EXIT_PREEMPTED
from trainq.jobs.record import Artifact
from trainq.jobs.status import JobStatus
from trainq.runtime.base import Exit
from trainq.worker.supervision import Stop

TRANSIENT = FailureClass.TRANSIENT
PERMANENT = FailureClass.PERMANENT


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended, classified."""

    exit_code: int | None
    failure_class: FailureClass | None = None  # None: success
    error: str | None = None
    result: dict[str, Any] | None = None
    ends_job_as: JobStatus | None = None  # timed out or cancelled: no retry
    run_s: float | None = None
    artifacts: list[Artifact] | None = None  # the job's, after this attempt's uploads
    artifact_error: str | None = None


def ending(
    attempt: int, exit_: Exit, stopped: Stop | None, tail: list[str], limit_s: int
) -> AttemptEnd:
    """The attempt's end from its exit, why the watch stopped it, and its last lines.

    A success carries no result yet: the runner adds it.
    """
    if stopped is None or exit_.code == 0:  # a success that beat the stop stands
        return classify(attempt, exit_, tail)
    if stopped == Stop.PREEMPTED:
        return AttemptEnd(
            exit_.code, FailureClass.PREEMPTED,
            f"attempt {attempt} yielded to a higher-priority job (exit {exit_.code}); "
            "the job is pending again and resumes from its last checkpoint",
        )  # fmt: skip
    if stopped == Stop.CANCELLED:
        return AttemptEnd(
            exit_.code, None, f"attempt {attempt} was stopped: cancelled on a user's request",
            ends_job_as=JobStatus.CANCELLED,
        )  # fmt: skip
    error = (
        f"attempt {attempt} reached the job's time limit of {limit_s} s and was stopped "
        f"(exit {exit_.code}); its last checkpoint is kept; last output:\n{_shown(tail)}"
    )
    return AttemptEnd(exit_.code, PERMANENT, error, ends_job_as=JobStatus.TIMED_OUT)


def classify(attempt: int, exit_: Exit, tail: list[str]) -> AttemptEnd:
    """Success, or the failure class of an exit nobody asked for."""
    if exit_.code == 0:
        return AttemptEnd(0)
    if exit_.oom_killed:
        reason, failure = "was killed for exceeding its memory limit", PERMANENT
    elif exit_.code == EXIT_PREEMPTED:
        reason, failure = "was preempted after checkpointing (exit 75)", TRANSIENT
    else:
        reason, failure = f"exited with code {exit_.code}", PERMANENT
    return AttemptEnd(
        exit_.code, failure, f"attempt {attempt} {reason}; last output:\n{_shown(tail)}"
    )


def _shown(tail: list[str]) -> str:
    return "\n".join(tail) if tail else "(no output)"
