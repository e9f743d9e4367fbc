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

import bisect
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
    # The groups by the order of their first job, kept sorted as heads are taken: each
    # worker takes the first group it serves whose owner is within quota.
    order = sorted(
        (order_key(jobs[0], standing.get(jobs[0].owner, 0.0)), group)
        for group, jobs in heads.items()
    )
    for worker in snapshot.workers:
        served = set(worker.queues)
        while free[worker.name] > 0:
            index = _first(order, heads, served, held, snapshot)
            if index is None:
                break
            group = order.pop(index)[1]
            best = heads[group].popleft()
            if heads[group]:
                head = heads[group][0]
                bisect.insort(order, (order_key(head, standing.get(head.owner, 0.0)), group))
            decision.admit.append(best)
            free[worker.name] -= 1
            load = held.setdefault(best.owner, Load())
            load.jobs, load.gpus = load.jobs + 1, load.gpus + best.gpus
    if rules.preempt_max > 0:
        decision.preempt = _victims(snapshot, rules, heads, free, held, standing)
    return decision


def _first(
    order: list[tuple[tuple[int, float, float, str], str]],
    heads: dict[str, deque[Candidate]],
    served: set[str],
    held: dict[str, Load],
    snapshot: Snapshot,
) -> int | None:
    """The place in ``order`` of the first group of a served queue within its quota."""
    for index, (_, group) in enumerate(order):
        head = heads[group][0]
        if head.queue not in served:
            continue
        if held.get(head.owner, Load()).over(snapshot.owner(head.owner).policy, head.gpus):
            continue
        return index
    return None


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
    # Per queue, once: the workers that could take it (none when one of them is free),
    # and whether nothing more can yield there this pass (candidates come in descending
    # order, and a queue with no victim for one has none for those after it).
    servers_of: dict[str, list[WorkerInfo]] = {}
    exhausted: set[str] = set()
    for candidate in waiting:
        if candidate.job_id in yielding or candidate.queue in exhausted:
            continue
        if not _waited(candidate, snapshot.now, rules):
            continue
        if candidate.queue not in servers_of:
            servers = [w for w in snapshot.workers if w.serves(candidate.queue)]
            servers_of[candidate.queue] = [] if any(free[w.name] > 0 for w in servers) else servers
        servers = servers_of[candidate.queue]
        if not servers:
            continue
        if held.get(candidate.owner, Load()).over(
            snapshot.owner(candidate.owner).policy, candidate.gpus
        ):
            continue
        victim = _lowest(candidate, servers, snapshot, rules, taken)
        if victim is None:
            exhausted.add(candidate.queue)
            continue
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
    there (asked before, or in this pass): one at a time."""
    names = {w.name for w in servers}
    on_servers = [h for h in snapshot.holders if h.worker in names]
    if any(h.yielding_to or h.job_id in taken for h in on_servers):
        return None
    eligible = [
        h
        for h in on_servers
        if h.running
        and h.preemptible
        and h.preemptions < rules.preempt_max
        and RANK[h.priority] < RANK[candidate.priority]
        and h.started_at is not None
        and snapshot.now - h.started_at >= rules.preempt_min_run_s
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda h: (RANK[h.priority], -(h.started_at or 0.0)))
