"""The fair scheduler's costs: dispatch overhead, the admission decision, the queue view.

Dispatch: two clusters on one Redis (two key prefixes, one process-runtime worker
each), one with ``TRAINQ_SCHEDULER=fair`` (submit records the job as pending and the
worker's admission loop sends it) and one with ``fifo`` (submit sends at once), a
no-op job submitted to each in turn; submit → started and submit → recorded finished
as in ``benchmarks/dispatch.py``. Baseline: fifo. Goal: p50 overhead <= 5 ms.
The decision: ``decide()`` over a snapshot as the state reader gives it (per group,
the oldest ``free slots + 1`` pending jobs) of N pending jobs from 50 users (3
priorities, 4 queues, 17 workers of which 7 have a free slot, 22 holders), median
of interleaved runs at 1,000 (the baseline), 10,000 (goal <= 1 ms) and 100,000
pending (goal: ratio <= 2). The same 10,000 in Redis (records created through the
store): a pass's read and decision (``SchedulerState.snapshot()`` + ``decide``, no
send), with its Redis round trips; goal <= 50 ms, so that an admission at 10,000
pending stays within dispatch's own 50 ms goal. The queue view: ``describe()`` of
the 10,000, and ``pending_queue()`` on Redis (what a pending job's waiting reason
costs ``GET /train/{id}``), no goal.

Run alone: .venv/bin/python -m benchmarks.scheduling [--runs N] [--pending N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from benchmarks import cluster as _cluster  # first: it points trainq at a private Redis
from benchmarks.dispatch import WARM_UP_RUNS, Spans
from benchmarks.figures import Figure, interleave, percentile, report, timed
from trainq.cluster.registry import Registry, WorkerInfo
from trainq.config import Settings, get_settings
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.scheduler.decide import decide
from trainq.scheduler.policy import RANK, OwnerPolicy, Policies
from trainq.scheduler.snapshot import Candidate, Holder, OwnerState, Rules, Snapshot
from trainq.scheduler.state import SchedulerState
from trainq.scheduler.view import describe
from trainq.store.keys import Keys
from trainq.store.redis import RedisJobRecords

FAIR_PREFIX = "trainq-bench-fair:"  # the fifo cluster keeps the process's prefix
STORE_PREFIX = "trainq-bench-sched:"  # the 10,000 pending jobs read from Redis
GOAL_OVERHEAD_MS = "<= 5"
OWNERS = [f"user{n:02d}" for n in range(50)]
PRIORITIES = {"low": 0.25, "normal": 0.6, "high": 0.15}
QUEUES = {"cpu": 0.4, "gpus.1": 0.35, "gpus.2": 0.15, "gpus.4": 0.1}
# queue: (workers, slots each, workers with one slot free); the rest is held.
FLEET = {"cpu": (4, 4, 4), "gpus.1": (8, 1, 2), "gpus.2": (3, 1, 1), "gpus.4": (2, 1, 0)}


def cluster_settings(scheduler: str) -> Settings:
    base = get_settings()
    prefix = base.key_prefix if scheduler == "fifo" else FAIR_PREFIX
    return base.model_copy(update={"scheduler": scheduler, "key_prefix": prefix})


def via(scheduler: str, command: list[str]) -> Callable[[], Spans]:
    """One no-op job through the cluster of ``scheduler``: its spans from the submit."""
    from trainq import connections
    from trainq.celery_app import app, create_app
    from trainq.client.submit import submit

    settings = cluster_settings(scheduler)
    records = connections.records(settings)
    results = app if scheduler == "fifo" else create_app(settings)  # fifo sends with `app`

    def run() -> Spans:
        submitted = time.time()
        job_id = submit({"command": command}, settings=settings, records=records)
        results.AsyncResult(job_id).get(timeout=120)
        record = records.get(job_id)
        started, finished = record.attempts[0].started_at, record.finished_at
        assert started is not None and finished is not None, record
        return Spans((started - submitted) * 1000, (finished - submitted) * 1000)

    return run


def dispatch_figures(runs: int) -> list[Figure]:
    variants = {s: via(s, ["true"]) for s in ("fair", "fifo")}
    fair = {"TRAINQ_SCHEDULER": "fair", "TRAINQ_KEY_PREFIX": FAIR_PREFIX}
    with (
        _cluster.worker_processes(1, "process", fair),
        _cluster.worker_processes(1, "process", {"TRAINQ_SCHEDULER": "fifo"}),
    ):
        interleave(WARM_UP_RUNS, variants)  # the fair worker takes the admission lease
        measured = interleave(runs, variants)
    out = []
    for span, label in (("started_ms", "started"), ("finished_ms", "recorded finished")):
        for q in (50, 95):
            value = percentile([getattr(s, span) for s in measured["fair"]], q)
            baseline = percentile([getattr(s, span) for s in measured["fifo"]], q)
            name = f"process: submit → {label}, p{q}, fair scheduler (baseline: fifo)"
            goal = GOAL_OVERHEAD_MS if q == 50 else ""
            out.append(Figure(name, "ms", value, baseline, goal, goal_on="overhead"))
    return out


# The cluster and its pending jobs, built the same way for the pure and Redis figures.


def fleet() -> tuple[list[WorkerInfo], list[tuple[str, str, int]]]:
    """The workers, and the slots held: (worker, queue, GPUs) per holder."""
    workers, held = [], []
    for queue, (count, slots, free) in FLEET.items():
        gpus = int(queue.split(".")[1]) if "." in queue else 0
        for n in range(count):
            name = f"{queue}-{n}@host{n}"
            info = {"hostname": f"host{n}", "queues": (queue,), "concurrency": slots}
            workers.append(WorkerInfo(name=name, runtime="docker", **info))
            held += [(name, queue, gpus)] * (slots - 1 if n < free else slots)
    return workers, held


def holders(now: float, rng: random.Random) -> list[Holder]:
    _, held = fleet()
    return [
        Holder(f"held-{n}", rng.choice(OWNERS), rng.choice(list(PRIORITIES)), queue, gpus, worker,
               started_at=now - rng.uniform(60, 7200), running=True, preemptible=n % 4 != 0)
        for n, (worker, queue, gpus) in enumerate(held)
    ]  # fmt: skip


def owners(rng: random.Random) -> dict[str, OwnerState]:
    """Usage to a week's GPU-hours; every 5th owner has quotas, every 7th a weight."""
    states = {}
    for n, owner in enumerate(OWNERS):
        policy = OwnerPolicy(
            gpus=2 if n % 5 == 0 else None,
            jobs=4 if n % 5 == 0 else None,
            weight=2.0 if n % 7 == 0 else 1.0,
        )
        states[owner] = OwnerState(policy, rng.expovariate(1 / 36_000))
    return states


def pending(count: int, now: float, rng: random.Random) -> dict[str, list[Candidate]]:
    """``count`` pending jobs by group, oldest first: owners by a Zipf law (a few
    users submit most), up to three days old."""
    weights = [1 / (rank + 1) for rank in range(len(OWNERS))]
    groups: dict[str, list[Candidate]] = {}
    for owner, priority, queue in zip(
        rng.choices(OWNERS, weights, k=count),
        rng.choices(list(PRIORITIES), list(PRIORITIES.values()), k=count),
        rng.choices(list(QUEUES), list(QUEUES.values()), k=count),
        strict=True,
    ):
        gpus = int(queue.split(".")[1]) if "." in queue else 0
        job = Candidate(
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            now - rng.uniform(0, 3 * 86_400),
            priority,
            queue,
            owner,
            gpus,
        )
        groups.setdefault(job.group, []).append(job)
    for jobs in groups.values():
        jobs.sort(key=lambda c: c.created_at)
    return groups


def snapshot(count: int, seed: int = 15) -> tuple[Snapshot, dict[str, list[Candidate]]]:
    """The snapshot the state reader would give for ``count`` pending jobs (heads: per
    group the oldest ``capacity - holders + 1``; the first with its wait where it could
    preempt a running job), and every pending job."""
    rng, now = random.Random(seed), time.time()
    workers, taken = fleet()
    everyone = pending(count, now, rng)
    held = holders(now, rng)
    per_group = sum(w.concurrency for w in workers) - len(taken) + 1
    lowest = min(RANK[h.priority] for h in held if h.preemptible)
    heads = {}
    for group, jobs in everyone.items():
        first = jobs[0]
        if RANK[first.priority] > lowest:
            first = replace(first, queued_at=first.created_at)
        heads[group] = [first, *jobs[1:per_group]]
    return Snapshot(now, workers, held, heads, owners(rng)), everyone


def median_ms(name: str, samples: list[float], *base: Any, **goal: Any) -> Figure:
    """A figure of the median of ``samples`` (seconds) in ms, then Figure's fields."""
    return Figure(name, "ms", statistics.median(samples) * 1000, *(base or (None, "")), **goal)


def timer(call: Callable[..., object], *args: Any) -> Callable[[], float]:
    """A variant for :func:`interleave`: the seconds one ``call(*args)`` takes."""

    def run() -> float:
        with timed() as elapsed_s:
            call(*args)
            return elapsed_s()

    return run


def decide_figures(pending_count: int, runs: int) -> list[Figure]:
    rules = Rules()
    sizes = {"1,000": 1_000, f"{pending_count:,}": pending_count, "100,000": 100_000}
    built = {label: snapshot(count) for label, count in sizes.items()}
    shown = {
        label: f"{len(s.heads)} groups, {sum(map(len, s.heads.values()))} heads read"
        for label, (s, _) in built.items()
    }
    times = interleave(runs, {label: timer(decide, s, rules) for label, (s, _) in built.items()})
    base = statistics.median(times["1,000"]) * 1000
    ten, hundred = f"{pending_count:,}", "100,000"
    suffix = f"from 50 users (baseline: 1,000 pending, {shown['1,000']}), median"
    view_s, everyone = built[ten]
    view = interleave(max(runs // 10, 5), {"view": timer(describe, view_s, everyone, rules)})
    # Linear growth would make 100x the pending jobs cost 100x; the decision's cost
    # follows the groups and heads read (about 2x here), so the goal is a tenth of linear.
    return [
        median_ms(f"decide(): {ten} pending ({shown[ten]}) {suffix}", times[ten], base, "<= 1"),
        median_ms(f"decide(): {hundred} pending ({shown[hundred]}; linear would be a ratio of "
                  f"100) {suffix}", times[hundred], base, "<= 10", goal_on="ratio"),
        median_ms(f"view.describe(): the queue view of {ten} pending, median", view["view"]),
    ]  # fmt: skip


# The same pending jobs in Redis, read by the scheduler's state reader.


class CountingConnection(redis.Connection):
    """Counts what it sends: one send per command, or per pipeline (a round trip)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def populate(client: redis.Redis, settings: Settings, count: int) -> SchedulerState:
    """Create ``count`` pending records (and the holders, workers, policies and
    usage of :func:`snapshot`) under a throwaway prefix; its state reader."""
    keys = Keys(settings.key_prefix)
    records = RedisJobRecords(client, keys)
    registry = Registry(client, keys, ttl_s=3600)
    built, everyone = snapshot(count)
    for worker in built.workers:
        registry.beat(worker)
    for holder in built.holders:
        attempt = Attempt(number=1, worker=holder.worker, started_at=holder.started_at)
        spec = job_spec(holder.priority, holder.gpus, holder.preemptible)
        records.create(JobRecord(id=holder.job_id, status=JobStatus.RUNNING, spec=spec,
                                 owner=holder.owner, queue=holder.queue, attempts=[attempt],
                                 started_at=holder.started_at))  # fmt: skip
    for job in (job for jobs in everyone.values() for job in jobs):
        spec = job_spec(job.priority, job.gpus, True)
        records.create(JobRecord(id=job.job_id, spec=spec, owner=job.owner, queue=job.queue,
                                 created_at=job.created_at, queued_at=job.created_at))  # fmt: skip
    # Set after the jobs: submit refuses a job larger than its owner's GPU quota.
    for name, state in built.owners.items():
        Policies(client, keys).set(name, state.policy)
        client.hset(keys.owner_usage(name), mapping={"gpu_s": state.usage_s, "at": built.now})
    return SchedulerState(client, keys, registry, settings)


def job_spec(priority: str, gpus: int, preemptible: bool) -> JobSpec:
    values: dict[str, object] = {"priority": priority, "preemptible": preemptible}
    return JobSpec.parse({**values, "gpu": True, "gpus": gpus} if gpus else values)


def redis_figures(pending_count: int, runs: int) -> list[Figure]:
    from trainq.client.scheduling import pending_queue

    settings = get_settings().model_copy(update={"key_prefix": STORE_PREFIX})
    pool = redis.ConnectionPool.from_url(
        settings.redis_url, decode_responses=True, connection_class=CountingConnection
    )
    client = redis.Redis(connection_pool=pool)
    state = populate(client, settings, pending_count)
    calls: dict[str, Callable[[], object]] = {
        "pass": lambda: decide(state.snapshot(), state.rules),
        "queue": lambda: pending_queue(settings, state),
    }
    trips = {}
    for name, call in calls.items():
        call()  # scripts loaded, the empty groups pruned
        before = CountingConnection.sent
        call()
        trips[name] = CountingConnection.sent - before
    times = interleave(runs, {name: timer(call) for name, call in calls.items()})
    client.close()
    count = f"{pending_count:,} pending from 50 users"
    return [
        median_ms(f"admission read + decide on Redis: {count} ({trips['pass']} round trips), "
                  "median", times["pass"], None, "<= 50"),
        median_ms(f"pending_queue() on Redis (a pending job's waiting reason): {count} "
                  f"({trips['queue']} round trips), median", times["queue"]),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="dispatch rounds (fair + fifo)")
    parser.add_argument("--pending", type=int, default=10_000, help="pending jobs")
    parser.add_argument("--decide-runs", type=int, default=200, help="rounds of decide()")
    args = parser.parse_args()

    results = decide_figures(args.pending, args.decide_runs)
    with _cluster.redis_server():
        results = dispatch_figures(args.runs) + results
        results += redis_figures(args.pending, max(args.decide_runs // 10, 5))
    report("scheduling", results)


if __name__ == "__main__":
    main()
