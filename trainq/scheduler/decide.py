"""The admission decision: which pending jobs go to which queue now, and which running
jobs must yield. Pure functions of a :class:`~trainq.scheduler.snapshot.Snapshot`.

For each live worker with a free slot, the best pending job among the queues it
consumes is admitted: highest priority, then the owner furthest below their fair share
(lowest standing), then the oldest; a job whose owner is at a running quota waits.
The work is proportional to the number of *groups* (priority × queue × owner), never
to the number of pending jobs.

Preemption: a pending job that has waited ``preempt_after_s``, whose owner is within
quota and whose every worker is busy, makes the lowest-priority preemptible job on
those workers that has run ``preempt_min_run_s`` (and yielded fewer than
``preempt_max`` times) yield to it; while that job stops, no other is asked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from trainq.cluster.registry import WorkerInfo
from trainq.scheduler.policy import RANK
from trainq.scheduler.snapshot import (
    Candidate,
    Holder,
    Load,
    Rules,
    Snapshot,
    loads,
    order_key,
    standings,
)


@dataclass
class Decision:
    admit: list[Candidate] = field(default_factory=list)
    # (the running job asked to yield, the pending job it yields to)
    preempt: list[tuple[Holder, Candidate]] = field(default_factory=list)


def free_slots(snapshot: Snapshot) -> dict[str, int]:
    """Each worker's free slots once the jobs holding or taking one are counted; a job
    sent but not yet taken holds a slot of the first worker of its queue with one."""
    free = {w.name: w.concurrency for w in snapshot.workers}
    for holder in snapshot.holders:
        if holder.worker in free:
            free[holder.worker] -= 1
    for holder in snapshot.holders:
        if holder.worker is None:
            for worker in snapshot.workers:
                if free[worker.name] > 0 and worker.serves(holder.queue):
                    free[worker.name] -= 1
                    break
    return free


def decide(snapshot: Snapshot, rules: Rules) -> Decision:
    decision = Decision()
    free = free_slots(snapshot)
    standing = standings(snapshot, rules)
    held = loads(snapshot)
    heads = {group: deque(jobs) for group, jobs in snapshot.heads.items() if jobs}
    by_queue: dict[str, list[str]] = {}
    for group, jobs in heads.items():
        by_queue.setdefault(jobs[0].queue, []).append(group)
    for worker in snapshot.workers:
        groups = [g for q in worker.queues for g in by_queue.get(q, ())]
        while free[worker.name] > 0:
            best = _best(groups, heads, held, standing, snapshot)
            if best is None:
                break
            heads[best.group].popleft()
            decision.admit.append(best)
            free[worker.name] -= 1
            load = held.setdefault(best.owner, Load())
            load.jobs, load.gpus = load.jobs + 1, load.gpus + best.gpus
    if rules.preempt_max > 0:
        decision.preempt = _victims(snapshot, rules, heads, free, held, standing)
    return decision


def _best(
    groups: list[str],
    heads: dict[str, deque[Candidate]],
    held: dict[str, Load],
    standing: dict[str, float],
    snapshot: Snapshot,
) -> Candidate | None:
    best: Candidate | None = None
    best_key: tuple[int, float, float, str] | None = None
    for group in groups:
        jobs = heads[group]
        if not jobs:
            continue
        head = jobs[0]
        if held.get(head.owner, Load()).over(snapshot.owner(head.owner).policy, head.gpus):
            continue
        key = order_key(head, standing.get(head.owner, 0.0))
        if best_key is None or key < best_key:
            best, best_key = head, key
    return best


def _victims(
    snapshot: Snapshot,
    rules: Rules,
    heads: dict[str, deque[Candidate]],
    free: dict[str, int],
    held: dict[str, Load],
    standing: dict[str, float],
) -> list[tuple[Holder, Candidate]]:
    waiting = [jobs[0] for jobs in heads.values() if jobs]
    waiting.sort(key=lambda c: order_key(c, standing.get(c.owner, 0.0)))
    yielding = {h.yielding_to for h in snapshot.holders if h.yielding_to}
    taken: set[str] = set()
    chosen: list[tuple[Holder, Candidate]] = []
    for candidate in waiting:
        if candidate.job_id in yielding or not _waited(candidate, snapshot.now, rules):
            continue
        if held.get(candidate.owner, Load()).over(
            snapshot.owner(candidate.owner).policy, candidate.gpus
        ):
            continue
        servers = [w for w in snapshot.workers if w.serves(candidate.queue)]
        if not servers or any(free[w.name] > 0 for w in servers):
            continue
        victim = _lowest(candidate, servers, snapshot, rules, taken)
        if victim is not None:
            taken.add(victim.job_id)
            chosen.append((victim, candidate))
    return chosen


def _waited(candidate: Candidate, now: float, rules: Rules) -> bool:
    since = candidate.queued_at
    return since is not None and now - since >= rules.preempt_after_s


def _lowest(
    candidate: Candidate,
    servers: list[WorkerInfo],
    snapshot: Snapshot,
    rules: Rules,
    taken: set[str],
) -> Holder | None:
    """The lowest-priority job on ``servers`` that may yield to ``candidate`` (the most
    recently started among equals: it loses the least); None while one already yields
    there."""
    names = {w.name for w in servers}
    on_servers = [h for h in snapshot.holders if h.worker in names]
    if any(h.yielding_to for h in on_servers):
        return None
    eligible = [
        h
        for h in on_servers
        if h.running
        and h.job_id not in taken
        and h.preemptible
        and h.preemptions < rules.preempt_max
        and RANK[h.priority] < RANK[candidate.priority]
        and h.started_at is not None
        and snapshot.now - h.started_at >= rules.preempt_min_run_s
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda h: (RANK[h.priority], -(h.started_at or 0.0)))
