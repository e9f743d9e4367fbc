"""Each job owner's share of the cluster, from Redis alone: jobs by status, the GPU- and
CPU-hours of their finished jobs, and the GPUs their running jobs hold now.

The counts are the owner's status indexes and totals hash (:mod:`trainq.store.redis`):
one pipelined round trip for every owner's counts and totals, and one read of the
running jobs' records, however many jobs they have had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus
from trainq.store.redis import RedisJobRecords


@dataclass(frozen=True)
class Usage:
    name: str
    jobs: dict[JobStatus, int]
    gpu_hours: float
    cpu_hours: float
    running_gpus: int


def usage(records: RedisJobRecords, only: str | None = None) -> list[Usage]:
    """Every owner's usage (just ``only``'s when given), sorted by name."""
    owners = [only] if only is not None else records.owners()
    if not owners:
        return []
    keys = records.keys
    with records.client.pipeline(transaction=False) as pipe:
        for owner in owners:
            for status in JobStatus:
                pipe.zcard(keys.owner_jobs_by_status(owner, status))
            pipe.hgetall(keys.owner_totals(owner))
            pipe.zrange(keys.owner_jobs_by_status(owner, JobStatus.RUNNING), 0, -1)
        answers = pipe.execute()
    step = len(JobStatus) + 2
    running_ids = [cast(list[str], answers[i * step + step - 1]) for i in range(len(owners))]
    flat = [job_id for ids in running_ids for job_id in ids]
    raws = records.client.mget([keys.job(job_id) for job_id in flat]) if flat else []
    held = {r.id: _gpus_held(r) for r in (JobRecord.from_json(raw) for raw in raws if raw)}
    found = []
    for i, owner in enumerate(owners):
        counts = answers[i * step : i * step + len(JobStatus)]
        totals = {
            k: float(v) for k, v in cast(dict[str, str], answers[i * step + len(JobStatus)]).items()
        }
        found.append(
            Usage(
                name=owner,
                jobs=dict(zip(JobStatus, (int(c) for c in counts), strict=True)),
                gpu_hours=totals.get("gpu_seconds", 0.0) / 3600,
                cpu_hours=totals.get("cpu_seconds", 0.0) / 3600,
                running_gpus=sum(held.get(job_id, 0) for job_id in running_ids[i]),
            )
        )
    return found


def _gpus_held(record: JobRecord) -> int:
    attempt = record.current_attempt
    if attempt is None or attempt.ended_at is not None:
        return 0
    return len(attempt.gpu_ids)
