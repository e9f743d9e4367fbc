"""The scheduler's indexes, which the record store keeps in the same transaction as
each status change (:mod:`trainq.scheduler` reads them):

- **pending groups**: a pending job (queued, not admitted) is in the sorted set of its
  group ``<priority>:<queue>:<owner>``, scored by creation time; the set of group
  names lets the scheduler read each group's oldest jobs without scanning jobs, so
  an admission decision costs the number of groups, not of pending jobs;
- **admitted**: jobs sent to their queue that no worker has taken yet;
- **wake**: a one-element list pushed whenever there may be something to admit (a
  job became pending, or one stopped holding a worker's slot);
- **usage**: each owner's decayed GPU-seconds and CPU-seconds (fair share), added to
  when an attempt ends.
"""

from __future__ import annotations

from typing import Any

from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.status import JobStatus
from trainq.store.keys import Keys

# Decays an owner's usage to now and adds an attempt's: KEYS[1] the usage hash; ARGV:
# GPU-seconds, CPU-seconds, now, half-life in seconds.
USAGE_LUA = """
local gpu = tonumber(redis.call('HGET', KEYS[1], 'gpu_s') or '0')
local cpu = tonumber(redis.call('HGET', KEYS[1], 'cpu_s') or '0')
local now = tonumber(ARGV[3])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or ARGV[3])
local factor = 2 ^ (-math.max(now - at, 0) / tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'gpu_s', tostring(gpu * factor + tonumber(ARGV[1])),
           'cpu_s', tostring(cpu * factor + tonumber(ARGV[2])), 'at', ARGV[3])
return 1
"""
# Forgets a group whose sorted set is empty (atomic: a job added meanwhile keeps it).
PRUNE_LUA = """
if redis.call('ZCARD', KEYS[1]) == 0 then return redis.call('SREM', KEYS[2], ARGV[1]) end
return 0
"""


def group_of(record: JobRecord) -> str | None:
    """The pending group of a pending job; None for any other."""
    if not record.pending:
        return None
    return group_name(record.spec.priority, record.queue or "", record.owner or "")


def group_name(priority: str, queue: str, owner: str) -> str:
    return f"{priority}:{queue}:{owner}"


def parse_group(group: str) -> tuple[str, str, str]:
    """``(priority, queue, owner)`` of a group name (queue and owner hold no ':')."""
    priority, queue, owner = group.split(":", 2)
    return priority, queue, owner


def holds_slot(record: JobRecord) -> bool:
    """Whether the job holds (or was sent to take) a worker's slot."""
    if record.status == JobStatus.QUEUED:
        return record.admitted_at is not None
    return record.status in (JobStatus.RUNNING, JobStatus.RETRYING)


def admitted(record: JobRecord) -> bool:
    return record.status == JobStatus.QUEUED and record.admitted_at is not None


def wakes(before: JobRecord | None, after: JobRecord) -> bool:
    """Whether the change may let the scheduler admit a job."""
    became_pending = after.pending and (before is None or group_of(before) != group_of(after))
    freed = before is not None and holds_slot(before) and not holds_slot(after)
    return became_pending or freed


def attempt_usage(attempt: Attempt) -> tuple[float, float]:
    """``(GPU-seconds, CPU-seconds)`` an ended attempt used: its run time times its
    GPUs, or its run time for an attempt without GPUs."""
    ran_s = attempt.run_s
    if ran_s is None and attempt.started_at is not None and attempt.ended_at is not None:
        ran_s = attempt.ended_at - attempt.started_at
    if not ran_s or ran_s < 0:
        return 0.0, 0.0
    if attempt.gpu_ids:
        return ran_s * len(attempt.gpu_ids), 0.0
    return 0.0, ran_s


def usage_added(before: JobRecord, after: JobRecord) -> tuple[float, float]:
    """What the attempts that ended in this change used."""
    ended_before = {a.number for a in before.attempts if a.ended_at is not None}
    gpu_s = cpu_s = 0.0
    for attempt in after.attempts:
        if attempt.ended_at is not None and attempt.number not in ended_before:
            gpu, cpu = attempt_usage(attempt)
            gpu_s, cpu_s = gpu_s + gpu, cpu_s + cpu
    return gpu_s, cpu_s


def decayed(value: float, at: float, now: float, half_life_s: float) -> float:
    """``value`` recorded at ``at``, halved every ``half_life_s`` until ``now``."""
    return value * 2 ** (-max(now - at, 0.0) / half_life_s)


def queue_ops(
    pipe: Any,
    keys: Keys,
    before: JobRecord,
    after: JobRecord,
    add_usage: Any,
    half_life_s: float,
    now: float,
) -> None:
    """Queue on ``pipe`` (in a MULTI) what the change does to the scheduler's indexes;
    ``add_usage`` is the registered :data:`USAGE_LUA` script."""
    was, is_ = group_of(before), group_of(after)
    if was != is_:
        if was is not None:
            pipe.zrem(keys.pending(was), after.id)
        if is_ is not None:
            pipe.zadd(keys.pending(is_), {after.id: after.created_at})
            pipe.sadd(keys.pending_groups, is_)
    if admitted(before) != admitted(after):
        if admitted(after):
            pipe.zadd(keys.admitted, {after.id: after.admitted_at or now})
        else:
            pipe.zrem(keys.admitted, after.id)
    if wakes(before, after):
        push_wake(pipe, keys)
    gpu_s, cpu_s = usage_added(before, after)
    if (gpu_s or cpu_s) and after.owner is not None:
        add_usage(
            keys=[keys.owner_usage(after.owner)],
            args=[gpu_s, cpu_s, now, half_life_s],
            client=pipe,
        )


def push_wake(pipe: Any, keys: Keys) -> None:
    """Wake the scheduler (the list never holds more than one element)."""
    pipe.lpush(keys.scheduler_wake, 1)
    pipe.ltrim(keys.scheduler_wake, 0, 0)
