"""The scheduler's reads from Redis: one :class:`Snapshot` in a handful of round trips,
whatever the number of pending jobs (the indexes are :mod:`trainq.store.pending`'s)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

import redis

from trainq.cluster.registry import Registry
from trainq.config import Settings
from trainq.jobs.record import JobRecord
from trainq.jobs.routing import queue_gpus
from trainq.jobs.status import JobStatus
from trainq.scheduler.policy import RANK, Policies, parse
from trainq.scheduler.snapshot import Candidate, Holder, OwnerState, Rules, Snapshot, able
from trainq.store.keys import Keys
from trainq.store.pending import PRUNE_LUA, decayed, parse_group


def rules_of(settings: Settings) -> Rules:
    return Rules(
        cpu_weight=settings.fairshare_cpu_weight,
        preempt_after_s=settings.preempt_after_s,
        preempt_min_run_s=settings.preempt_min_run_s,
        preempt_max=settings.preempt_max,
        default_max_priority=settings.default_max_priority,
    )


class SchedulerState:
    """Reads snapshots and pending listings of one cluster (Redis, key prefix)."""

    def __init__(self, client: redis.Redis, keys: Keys, registry: Registry, settings: Settings):
        self._redis = client
        self._keys = keys
        self._registry = registry
        self._half_life_s = settings.fairshare_half_life_h * 3600
        self._rules = rules_of(settings)
        self._prune = client.register_script(PRUNE_LUA)
        self.policies = Policies(client, keys)

    @property
    def rules(self) -> Rules:
        return self._rules

    def snapshot(self, heads_per_group: int | None = None, owners: Iterable[str] = ()) -> Snapshot:
        """The cluster now, with each group's oldest ``heads_per_group`` pending jobs
        (default: one more than the cluster's free slots); besides the owners with
        pending or held jobs, ``owners``' policies and usage too."""
        now = time.time()
        workers = [w for w in self._registry.live() if able(w)]
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self._keys.jobs_by_status(JobStatus.RUNNING), 0, -1)
            pipe.zrange(self._keys.jobs_by_status(JobStatus.RETRYING), 0, -1)
            pipe.zrange(self._keys.admitted, 0, -1)
            pipe.smembers(self._keys.pending_groups)
            running, retrying, admitted, groups = pipe.execute()
        holders = self._holders([*running, *retrying, *admitted])
        if heads_per_group is None:
            capacity = sum(w.concurrency for w in workers)
            heads_per_group = max(capacity - len(holders), 0) + 1
        heads = self._heads(sorted(groups), heads_per_group)
        seen = {c.owner for jobs in heads.values() for c in jobs} | {h.owner for h in holders}
        states = self._owners(sorted(seen | set(owners)), now)
        snapshot = Snapshot(now, workers, holders, heads, states)
        self._fill_waits(snapshot)
        return snapshot

    def idle(self) -> bool:
        """Whether no job is pending and none admitted but not yet running: a pass then
        has nothing to do (two commands instead of a snapshot's dozen)."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.scard(self._keys.pending_groups)
            pipe.zcard(self._keys.admitted)
            groups, admitted = pipe.execute()
        return int(groups) == 0 and int(admitted) == 0

    def pending(self) -> dict[str, list[Candidate]]:
        """Every pending job by group, oldest first (for the queue view)."""
        groups = cast(set[str], self._redis.smembers(self._keys.pending_groups))
        return self._heads(sorted(groups), None)

    def records(self, job_ids: list[str]) -> list[JobRecord]:
        if not job_ids:
            return []
        raws = self._redis.mget([self._keys.job(i) for i in job_ids])
        return [JobRecord.from_json(raw) for raw in raws if raw is not None]

    def _holders(self, job_ids: list[str]) -> list[Holder]:
        if not job_ids:
            return []
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.mget([self._keys.job(i) for i in job_ids])
            pipe.mget([self._keys.yield_request(i) for i in job_ids])
            raws, yields = pipe.execute()
        holders = []
        for raw, yield_to in zip(raws, yields, strict=True):
            if raw is None:
                continue
            record = JobRecord.from_json(raw)
            if record.status.is_terminal or record.pending:
                continue  # moved on between the index read and this one
            holders.append(holder_of(record, yield_to))
        return holders

    def _heads(self, groups: list[str], per_group: int | None) -> dict[str, list[Candidate]]:
        stop = -1 if per_group is None else per_group - 1
        with self._redis.pipeline(transaction=False) as pipe:
            for group in groups:
                pipe.zrange(self._keys.pending(group), 0, stop, withscores=True)
            answers = cast(list[list[tuple[str, float]]], pipe.execute())
        heads: dict[str, list[Candidate]] = {}
        for group, entries in zip(groups, answers, strict=True):
            if not entries:
                self._prune(keys=[self._keys.pending(group), self._keys.pending_groups],
                            args=[group])  # fmt: skip
                continue
            priority, queue, owner = parse_group(group)
            gpus = queue_gpus(queue)
            heads[group] = [
                Candidate(job_id, created_at, priority, queue, owner, gpus)
                for job_id, created_at in entries
            ]
        return heads

    def _owners(self, owners: list[str], now: float) -> dict[str, OwnerState]:
        with self._redis.pipeline(transaction=False) as pipe:
            for owner in owners:
                pipe.hgetall(self._keys.owner_policy(owner))
                pipe.hgetall(self._keys.owner_usage(owner))
            answers = cast(list[dict[str, str]], pipe.execute())
        states = {}
        for index, owner in enumerate(owners):
            policy, usage = parse(answers[2 * index]), answers[2 * index + 1]
            used_s = float(usage.get("gpu_s", 0)) + self._rules.cpu_weight * float(
                usage.get("cpu_s", 0)
            )
            at = float(usage.get("at", now))
            states[owner] = OwnerState(policy, decayed(used_s, at, now, self._half_life_s))
        return states

    def _fill_waits(self, snapshot: Snapshot) -> None:
        """Read when the first job of each group that could preempt became pending."""
        if self._rules.preempt_max <= 0:
            return
        running = [RANK[h.priority] for h in snapshot.holders if h.running and h.preemptible]
        if not running:
            return
        lowest = min(running)
        firsts = [jobs[0] for jobs in snapshot.heads.values() if RANK[jobs[0].priority] > lowest]
        found = self.records([c.job_id for c in firsts])
        since = {r.id: r.queued_at or r.created_at for r in found}
        for jobs in snapshot.heads.values():
            head = jobs[0]
            if head.job_id in since:
                jobs[0] = Candidate(
                    head.job_id, head.created_at, head.priority, head.queue, head.owner,
                    head.gpus, since[head.job_id],
                )  # fmt: skip


def holder_of(record: JobRecord, yield_to: str | None = None) -> Holder:
    current = record.current_attempt
    running = record.status == JobStatus.RUNNING and current is not None
    running = running and current is not None and current.ended_at is None
    return Holder(
        job_id=record.id,
        owner=record.owner or "",
        priority=record.spec.priority,
        queue=record.queue or "",
        gpus=record.spec.gpu_count,
        worker=None if record.status == JobStatus.QUEUED or current is None else current.worker,
        started_at=current.started_at if running and current is not None else None,
        running=running,
        preemptible=record.spec.preemptible,
        preemptions=record.preemptions,
        yielding_to=yield_to,
        admitted_at=record.admitted_at if record.status == JobStatus.QUEUED else None,
    )
