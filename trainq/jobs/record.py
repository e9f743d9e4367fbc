"""The job record: what the store keeps about one job, in one JSON shape everywhere.

Top-level keys: ``id, status, spec, owner, queue, attempts, progress, result, error,
log_path, artifacts, admissions, preemptions`` and the timestamps ``created_at,
updated_at, started_at, finished_at, queued_at, admitted_at`` (Unix seconds).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainq.errors import JobFailed
from trainq.jobs.failures import FailureClass
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus, check_transition


class Progress(BaseModel):
    """The latest progress line a job printed (see train.py's protocol)."""

    model_config = ConfigDict(extra="allow")

    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None


class Attempt(BaseModel):
    """One launch of the job's container or process."""

    number: int
    handle: str | None = None  # the runtime's id: a container id, or a pid
    runtime: str | None = None
    image: str | None = None
    image_digest: str | None = None
    worker: str | None = None
    host: str | None = None
    gpu_ids: list[int] = Field(default_factory=list)  # the devices it ran on (host ids)
    gpu_uuids: list[str] = Field(default_factory=list)  # theirs, when NVML was there
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    run_s: float | None = None  # the container's (process's) own run time
    failure_class: FailureClass | None = None  # when it failed
    error: str | None = None
    restored_epoch: int | None = None  # the checkpoint it started from, if restored
    artifact_error: str | None = None  # an upload to the artifact store that failed


class Artifact(BaseModel):
    """A file of the job in the artifact store, ``path`` relative to the job's prefix
    (``outputs/model.pt``, ``checkpoints/checkpoint.pt``, ``logs/attempt-1.log.gz``)."""

    path: str
    size: int
    sha256: str
    attempt: int


class JobRecord(BaseModel):
    id: str
    status: JobStatus = JobStatus.QUEUED
    spec: JobSpec
    # Who submitted it (trainq.users): the API token's user, or TRAINQ_USER / the login
    # name of a direct (Redis) client. None for jobs recorded before owners existed.
    owner: str | None = None
    queue: str | None = None  # where it was sent (trainq.routing)
    attempts: list[Attempt] = Field(default_factory=list)
    progress: Progress = Field(default_factory=Progress)
    result: dict[str, Any] | None = None
    error: str | None = None
    log_path: str | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    created_at: float = Field(default_factory=time.time)
    # The scheduler (trainq.scheduler): when the job last became pending (submit, or a
    # preemption sent it back), when it was last admitted (sent to its queue; None while
    # pending), how often it was admitted, and how often preempted.
    queued_at: float | None = None
    admitted_at: float | None = None
    admissions: int = 0
    preemptions: int = 0
    updated_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    def moved_to(self, status: JobStatus, **changes: Any) -> JobRecord:
        """A copy in ``status`` with ``changes``; refuses what the transition map refuses."""
        check_transition(self.status, status)
        now = time.time()
        stamps: dict[str, Any] = {"updated_at": now}
        if status == JobStatus.RUNNING and self.started_at is None:
            stamps["started_at"] = now
        if status.is_terminal:
            stamps["finished_at"] = now
        return self.model_copy(update={"status": status, **stamps, **changes})

    @property
    def pending(self) -> bool:
        """Whether the job waits for the scheduler to admit it (queued, not yet sent)."""
        return self.status == JobStatus.QUEUED and self.admitted_at is None

    @property
    def counted_attempts(self) -> int:
        """Attempts that count against ``max_retries``: preempted ones do not."""
        return sum(1 for a in self.attempts if a.failure_class != FailureClass.PREEMPTED)

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def outcome(self) -> dict[str, Any]:
        """A final record's result, or :class:`JobFailed` carrying its status and error."""
        if self.status == JobStatus.SUCCEEDED:
            return self.result or {}
        raise JobFailed(f"job {self.id} {self.status}: {self.error or 'no reason recorded'}")

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobRecord:
        return cls.model_validate_json(raw)
