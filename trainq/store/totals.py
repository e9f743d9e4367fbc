"""Cluster totals: what each job adds when it reaches a final status.

The stores add a finished job's increments to one hash in the same transaction as
its final status, so ``/stats`` and ``/metrics`` read totals without scanning jobs.
Each owner's finished jobs add to the owner's own hash (:func:`owner_increments`).
Keys: ``finished:<status>``, ``attempts``, ``retries``, ``failure_class:<class>``,
``duration_count``, ``duration_sum_s`` and ``duration_le:<bucket>`` (cumulative).
"""

from __future__ import annotations

from collections import defaultdict

from trainq.errors import QuotaExceeded
from trainq.jobs.record import JobRecord
from trainq.store.pending import attempt_usage

# Job run time buckets in seconds, for jobs from seconds to a day long (also
# Flower's task runtime histogram buckets).
DURATION_BUCKETS_S = (1, 10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400)


def increments(record: JobRecord) -> dict[str, float]:
    """What ``record``, just final, adds to the totals."""
    added: dict[str, float] = defaultdict(float)
    added[f"finished:{record.status.value}"] = 1
    added["attempts"] = len(record.attempts)
    added["retries"] = max(len(record.attempts) - 1, 0)
    for attempt in record.attempts:
        if attempt.failure_class is not None:
            added[f"failure_class:{attempt.failure_class}"] += 1
    if record.started_at is not None and record.finished_at is not None:
        duration_s = max(record.finished_at - record.started_at, 0.0)
        added["duration_count"] += 1
        added["duration_sum_s"] += duration_s
        for bound_s in DURATION_BUCKETS_S:
            if duration_s <= bound_s:
                added[f"duration_le:{bound_s}"] += 1
    return dict(added)


def owner_increments(record: JobRecord) -> dict[str, float]:
    """What ``record``, just final, adds to its owner's totals: ``finished``, and the
    GPU-seconds (its attempts' run time times their GPUs) and CPU-seconds (run time of
    its attempts without GPUs) it used."""
    added: dict[str, float] = defaultdict(float)
    added["finished"] = 1
    for attempt in record.attempts:
        gpu_s, cpu_s = attempt_usage(attempt)
        added["gpu_seconds"] += gpu_s
        added["cpu_seconds"] += cpu_s
    return {name: amount for name, amount in added.items() if amount}


def just_finished(before: JobRecord, after: JobRecord) -> bool:
    return after.status.is_terminal and not before.status.is_terminal


def over_cap(owner: str, max_queued: int, own: bool = False) -> QuotaExceeded:
    """The refusal of a submit that would put ``owner`` over the queued-jobs cap: the
    cluster's, or their ``own`` (their quota)."""
    source = (
        f"{owner}'s queued quota (trainq users quota)"
        if own
        else f"TRAINQ_MAX_QUEUED_PER_USER={max_queued}"
    )
    return QuotaExceeded(
        f"{owner} already has {max_queued} queued jobs, the most a user may have "
        f"({source}): wait for some to start, or cancel some"
    )


def over_gpu_quota(owner: str, gpus: int, quota: object) -> QuotaExceeded:
    """The refusal of a job that needs more GPUs than its owner's GPU quota allows."""
    return QuotaExceeded(
        f"the job needs {gpus} GPUs, more than {owner}'s GPU quota of {quota}: it could "
        "never run; ask an admin to raise it (trainq users quota NAME --gpus N)"
    )
