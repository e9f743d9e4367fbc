"""Why each pending job waits: the pending jobs in the order they will be admitted,
each with its reason, and each owner's share (``trainq queue``, ``GET /queue``,
``GET /train/{id}``, ``/stats``)."""

from __future__ import annotations

from dataclasses import dataclass

from trainq.scheduler.decide import free_slots
from trainq.scheduler.policy import OwnerPolicy
from trainq.scheduler.snapshot import (
    Candidate,
    Load,
    Rules,
    Snapshot,
    loads,
    order_key,
    quota_reason,
    standings,
)

YIELD_REASON = "waiting for a lower-priority job to yield"


@dataclass(frozen=True)
class QueueEntry:
    """A pending job, its place in the admission order (1 = next) and why it waits."""

    position: int
    job_id: str
    owner: str
    priority: str
    queue: str
    created_at: float
    reason: str


@dataclass(frozen=True)
class Share:
    """An owner's fair-share standing and what they hold now."""

    owner: str
    usage_gpu_hours: float  # decayed (CPU time weighted in), plus running attempts so far
    standing: float  # usage over weight: lower goes first
    running_jobs: int
    running_gpus: int
    policy: OwnerPolicy


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(
    snapshot: Snapshot, pending: dict[str, list[Candidate]], rules: Rules
) -> list[QueueEntry]:
    """Every pending job in admission order as things stand, with its reason."""
    standing = standings(snapshot, rules)
    held = loads(snapshot)
    free = free_slots(snapshot)
    beneficiaries = {h.yielding_to for h in snapshot.holders if h.yielding_to}
    jobs = [c for group in pending.values() for c in group]
    jobs.sort(key=lambda c: order_key(c, standing.get(c.owner, 0.0)))
    places: dict[str, int] = {}
    entries = []
    serving: dict[str, tuple[int, int, int]] = {}  # per queue: its workers, busy, free slots
    for position, job in enumerate(jobs, start=1):
        if job.queue not in serving:
            servers = [w for w in snapshot.workers if w.serves(job.queue)]
            busy = sum(1 for w in servers if free[w.name] <= 0)
            serving[job.queue] = (len(servers), busy, sum(max(free[w.name], 0) for w in servers))
        count, busy, slots = serving[job.queue]
        load = held.get(job.owner, Load())
        policy = snapshot.owner(job.owner).policy
        quota = load.over(policy, job.gpus)
        if not count:
            reason = f"no live worker serves queue {job.queue}"
        elif quota is not None:
            reason = quota_reason(job.owner, quota, load, policy, job.gpus)
        elif job.job_id in beneficiaries:
            reason = YIELD_REASON
        else:
            place = places[job.queue] = places.get(job.queue, 0) + 1
            reason = f"{ordinal(place)} for {job.queue}"
            if place <= slots:
                reason += ": a worker is free, being admitted"
            else:
                reason += f" ({busy} of {count} workers busy)"
        entries.append(
            QueueEntry(
                position, job.job_id, job.owner, job.priority, job.queue, job.created_at, reason
            )
        )
    return entries


def shares(snapshot: Snapshot, rules: Rules) -> list[Share]:
    """Each owner the scheduler sees now (pending or holding work), by name."""
    standing = standings(snapshot, rules)
    held = loads(snapshot)
    found = []
    for owner in sorted(set(snapshot.owners) | set(held)):
        policy = snapshot.owner(owner).policy
        load = held.get(owner, Load())
        found.append(
            Share(
                owner=owner,
                usage_gpu_hours=standing.get(owner, 0.0) * policy.weight / 3600,
                standing=standing.get(owner, 0.0),
                running_jobs=load.jobs,
                running_gpus=load.gpus,
                policy=policy,
            )
        )
    return found
