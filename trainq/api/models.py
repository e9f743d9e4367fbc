"""The API's request and response bodies (the job spec itself is trainq.jobs.spec.JobSpec)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from trainq.cluster.figures import Figures
from trainq.jobs.record import Artifact, JobRecord
from trainq.jobs.spec import Priority
from trainq.jobs.status import JobStatus
from trainq.scheduler.policy import OwnerPolicy


class Problem(BaseModel):
    """Every error that is not a validation error: what is wrong, in one sentence."""

    detail: str = Field(examples=["no job with id 'f00'"])


class JobAccepted(BaseModel):
    id: str = Field(description="The job id; GET /train/{id} shows it")
    status: JobStatus
    url: str = Field(description="Where the job's record is (also the Location header)")


class JobView(JobRecord):
    """The job record, and for a queued job why it is still waiting."""

    waiting: str | None = Field(
        default=None,
        description="For a queued job: why the scheduler has not admitted it yet (its "
        "place in the pending queue, its owner's quota, no live worker for its queue), "
        "or once admitted its place in its queue",
    )


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page"
    )


class WorkerView(BaseModel):
    name: str
    hostname: str
    queues: list[str]
    gpus: list[int] = Field(description="The GPU ids it owns; empty: a CPU worker")
    gpu_uuids: list[str]
    runtime: str
    concurrency: int
    runtime_error: str | None = Field(description="Why its runtime cannot run jobs now")
    store_error: str | None = Field(
        default=None, description="Why it cannot reach the artifact store (it takes no job)"
    )


class UserUsage(BaseModel):
    name: str
    jobs: dict[str, int] = Field(description="The user's jobs by status")
    gpu_hours: float = Field(description="GPU-hours of the user's finished jobs")
    cpu_hours: float = Field(description="Run time of the user's finished CPU jobs, in hours")
    running_gpus: int = Field(description="GPUs the user's running jobs hold now")
    running_jobs: int = Field(
        default=0, description="Jobs of the user holding a worker's slot (or sent to take one)"
    )
    usage_gpu_hours: float = Field(
        default=0.0,
        description="Fair-share usage: decayed GPU-hours (CPU time weighted in), running "
        "attempts included; 0 for an owner with nothing pending or running",
    )
    standing: float = Field(
        default=0.0, description="Fair-share usage over weight: lower is admitted first"
    )
    weight: float = Field(default=1.0, description="Fair-share weight")
    quota_gpus: int | None = Field(default=None, description="Most GPUs at once; null: none")
    quota_jobs: int | None = Field(default=None, description="Most jobs at once; null: none")


class Stats(BaseModel):
    jobs: dict[str, int] = Field(description="Jobs by status")
    queues: dict[str, int] = Field(description="Messages waiting, by queue")
    workers: list[WorkerView]
    figures: Figures
    users: list[UserUsage] = Field(
        default_factory=list,
        description="Per job owner (only one's own when jobs are visible to owners only)",
    )


class QueuedJob(BaseModel):
    """A pending job, where it stands in the admission order and why it waits."""

    position: int = Field(description="Its place in the whole pending queue (1: next)")
    id: str
    owner: str
    priority: Priority
    queue: str
    name: str | None = Field(description="The job's name, if it has one")
    created_at: float
    reason: str = Field(examples=["no live worker serves queue gpu.1"])


class PendingQueue(BaseModel):
    jobs: list[QueuedJob] = Field(description="In the order the scheduler will admit them")
    total: int = Field(description="Pending jobs that match the filters (before the limit)")


class Quota(OwnerPolicy):
    """An owner's scheduling policy (null: no limit, or the cluster's default) and the
    cluster's defaults that apply where it sets none."""

    owner: str
    default_max_priority: Priority = Field(description="TRAINQ_DEFAULT_MAX_PRIORITY")
    default_queued: int | None = Field(description="TRAINQ_MAX_QUEUED_PER_USER (null: no cap)")


class Me(BaseModel):
    name: str = Field(description="The user the token belongs to")
    admin: bool


class ArtifactList(BaseModel):
    job_id: str
    store: str = Field(description="The artifact store's URL")
    artifacts: list[Artifact]


class SessionView(BaseModel):
    """The web page's session: whom it acts for and the token its unsafe calls send."""

    user: str
    admin: bool
    csrf: str = Field(description="Send as X-CSRF-Token with every POST, PATCH and DELETE")
    expires_at: float = Field(description="When the session ends (Unix seconds)")


class MetricPoints(BaseModel):
    """A job's metric series: one point per progress line its attempts printed."""

    points: list[dict[str, int | float]] = Field(
        description="Oldest first: the line's numeric fields (epoch, step, loss, any "
        "other) with its attempt and ts (Unix seconds)",
        examples=[[{"epoch": 1, "epochs": 3, "loss": 0.52, "attempt": 1, "ts": 1.7e9}]],
    )
    last: str | None = Field(
        description="The last point's id: pass as ?after= for only newer points (the "
        "given after, or null, when there is none)"
    )


class Health(BaseModel):
    ok: bool
    checks: dict[str, str] = Field(description="Each dependency: 'ok' or what is wrong")


SPEC_EXAMPLES: dict[str, Any] = {
    "defaults": {
        "summary": "The standard train.py with defaults",
        "value": {"epochs": 2},
    },
    "tuned": {
        "summary": "Hyper-parameters, limits and retries",
        "value": {
            "epochs": 5,
            "batch_size": 64,
            "learning_rate": 0.001,
            "timeout": 3600,
            "max_retries": 3,
            "memory": "4g",
            "cpus": 2,
            "name": "resnet-baseline",
        },
    },
    "custom": {
        "summary": "Your own command in an allowed image",
        "value": {
            "image": "trainq-train:latest",
            "command": ["python3", "/app/train.py", "--epochs", "3"],
            "env": {"WANDB_MODE": "offline"},
        },
    },
}

# OpenAPI descriptions of the error answers the routes share.
Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {
    401: {"model": Problem, "description": "Missing, unknown, revoked or malformed token"},
    429: {
        "model": Problem,
        "description": "Too many requests with this token",
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    },
}
NOT_FOUND: Responses = {
    404: {"model": Problem, "description": "No such job (or, when jobs are visible to their "
          "owners only, another user's)"},
}  # fmt: skip
FORBIDDEN: Responses = {
    403: {"model": Problem, "description": "Only the job's owner or an admin may do this"}
}
QUOTA: Responses = {
    429: {"model": Problem, "description": "Too many requests, or the owner's queued-jobs "
          "cap is reached (nothing was recorded)"},
}  # fmt: skip
