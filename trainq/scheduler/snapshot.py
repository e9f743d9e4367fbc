"""What the scheduler sees in one pass: who can run jobs, who holds their slots, the
oldest pending jobs of each group, and each owner's policy and fair-share usage.

Plain data, read from Redis by :mod:`trainq.scheduler.state` and decided on by the
pure functions of :mod:`trainq.scheduler.decide` (unit tests build snapshots by hand).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainq.cluster.registry import WorkerInfo
from trainq.scheduler.policy import RANK, OwnerPolicy


@dataclass(frozen=True)
class Candidate:
    """A pending job near the head of its group."""

    job_id: str
    created_at: float  # its original age: the order within a priority and standing
    priority: str
    queue: str
    owner: str
    gpus: int
    queued_at: float | None = None  # when it last became pending, where read

    @property
    def group(self) -> str:
        return f"{self.priority}:{self.queue}:{self.owner}"


@dataclass(frozen=True)
class Holder:
    """A job that holds a worker's slot (running, retrying) or was sent to take one."""

    job_id: str
    owner: str
    priority: str
    queue: str
    gpus: int
    worker: str | None  # None: admitted, no worker has taken it yet
    started_at: float | None = None  # its current attempt's start, while running
    running: bool = False  # an attempt runs now (not between attempts, not in flight)
    preemptible: bool = True
    preemptions: int = 0
    yielding_to: str | None = None  # asked to yield to this job, not yet stopped
    admitted_at: float | None = None  # when it was sent, while no worker has taken it


@dataclass
class OwnerState:
    policy: OwnerPolicy = field(default_factory=OwnerPolicy)
    usage_s: float = 0.0  # decayed GPU-seconds plus weighted CPU-seconds, to now


@dataclass(frozen=True)
class Rules:
    """The settings a decision follows."""

    cpu_weight: float = 0.1
    preempt_after_s: float = 300.0
    preempt_min_run_s: float = 600.0
    preempt_max: int = 3
    default_max_priority: str = "normal"


@dataclass
class Snapshot:
    now: float
    workers: list[WorkerInfo]  # live workers able to run jobs
    holders: list[Holder]
    heads: dict[str, list[Candidate]]  # by group, oldest first
    owners: dict[str, OwnerState]

    def owner(self, name: str) -> OwnerState:
        return self.owners.get(name) or OwnerState()


def able(worker: WorkerInfo) -> bool:
    """Whether a live worker can take jobs now (its runtime and store answer)."""
    return bool(worker.queues) and worker.runtime_error is None and worker.store_error is None


def order_key(candidate: Candidate, standing: float) -> tuple[int, float, float, str]:
    """Admission order: priority, then the owner's fair-share standing, then age."""
    return (-RANK[candidate.priority], standing, candidate.created_at, candidate.job_id)


def standings(snapshot: Snapshot, rules: Rules) -> dict[str, float]:
    """Each owner's standing: decayed usage plus what their running attempts have used
    so far, over their weight; lower goes first."""
    used = {name: state.usage_s for name, state in snapshot.owners.items()}
    for holder in snapshot.holders:
        if holder.running and holder.started_at is not None:
            ran_s = max(snapshot.now - holder.started_at, 0.0)
            share = ran_s * holder.gpus if holder.gpus else ran_s * rules.cpu_weight
            used[holder.owner] = used.get(holder.owner, 0.0) + share
    return {name: used_s / snapshot.owner(name).policy.weight for name, used_s in used.items()}


@dataclass
class Load:
    """What an owner holds now: jobs and GPUs, against their quota."""

    jobs: int = 0
    gpus: int = 0

    def over(self, policy: OwnerPolicy, gpus: int) -> str | None:
        """Which quota one more job of ``gpus`` GPUs would break ("gpus" or "jobs")."""
        if policy.jobs is not None and self.jobs + 1 > policy.jobs:
            return "jobs"
        if gpus and policy.gpus is not None and self.gpus + gpus > policy.gpus:
            return "gpus"
        return None


def loads(snapshot: Snapshot) -> dict[str, Load]:
    held: dict[str, Load] = {}
    for holder in snapshot.holders:
        load = held.setdefault(holder.owner, Load())
        load.jobs += 1
        load.gpus += holder.gpus
    return held


def quota_reason(owner: str, quota: str, load: Load, policy: OwnerPolicy, gpus: int = 0) -> str:
    """Why an owner's job waits for their quota, e.g. "alice is at their GPU quota 2/2"."""
    if quota == "gpus" and policy.gpus is not None and gpus > policy.gpus:
        return f"needs {gpus} GPUs, more than {owner}'s GPU quota of {policy.gpus}"
    if quota == "gpus":
        return f"{owner} is at their GPU quota {load.gpus}/{policy.gpus}"
    return f"{owner} is at their running-jobs quota {load.jobs}/{policy.jobs}"
