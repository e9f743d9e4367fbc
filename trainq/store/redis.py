"""The store in Redis: job records, coordination keys and idempotency keys.

Records are one JSON string per job, plus sorted-set indexes: ``jobs:all`` and
``jobs:status:<status>`` hold job ids scored by creation time, so listing (all, or
by status, newest first) never scans the key space. Updates are optimistic
transactions (WATCH/MULTI): the record, its status index and the totals change
together or not at all. Every key name is in :mod:`trainq.store.keys`; the clients
are built from settings by :mod:`trainq.connections`.
"""

from __future__ import annotations

import builtins
import time
from typing import cast

import redis

from trainq.errors import JobNotFound
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus, check_transition
from trainq.store.coordination import RedisCoordination
from trainq.store.keys import Keys
from trainq.store.name_filter import SCAN_LUA, scan_args, scanned_page
from trainq.store.paging import decode_cursor, encode_cursor, is_after
from trainq.store.pending import USAGE_LUA, group_of, queue_ops
from trainq.store.protocols import JobPage, Mutation
from trainq.store.replication import WITHDRAW_LUA, confirm_writes
from trainq.store.totals import (
    increments,
    just_finished,
    over_cap,
    over_gpu_quota,
    owner_increments,
)

__all__ = ["RedisCoordination", "RedisIdempotencyKeys", "RedisJobRecords"]

# Fair share's default half-life (Slurm's): 7 days.
DEFAULT_HALF_LIFE_S = 7 * 86_400.0
# Extra ids fetched per page to step over records created in the same instant.
_TIE_SLACK = 32
# A new record and its index entries (all jobs, its status; with an owner, the owner's
# all and status indexes and the set of owners; when pending, its pending group, the
# set of groups and a wake-up of the scheduler) in one round trip (1; 2 when this very
# record is there already: the call was sent again after its answer was lost), or
# nothing when the id is taken (0), the owner already has their queued cap (the owner's policy
# "queued", else ARGV[5]; > 0) of queued jobs (-1), or the job needs more GPUs
# (ARGV[7]) than the owner's GPU quota (-2): it could never run.
_CREATE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return 2
end
local cap = tonumber(redis.call('HGET', KEYS[10], 'queued') or ARGV[5])
if ARGV[4] ~= '' and cap > 0 and redis.call('ZCARD', KEYS[5]) >= cap then
  return -1
end
local gpu_quota = redis.call('HGET', KEYS[10], 'gpus')
if ARGV[4] ~= '' and gpu_quota and tonumber(ARGV[7]) > tonumber(gpu_quota) then
  return -2
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
  if ARGV[4] ~= '' then
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
    redis.call('ZADD', KEYS[5], ARGV[2], ARGV[3])
    redis.call('SADD', KEYS[6], ARGV[4])
  end
  if ARGV[6] ~= '' then
    redis.call('ZADD', KEYS[7], ARGV[2], ARGV[3])
    redis.call('SADD', KEYS[8], ARGV[6])
    redis.call('LPUSH', KEYS[9], 1)
    redis.call('LTRIM', KEYS[9], 0, 0)
  end
  return 1
end
return 0
"""
_RELEASE_KEY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisJobRecords:
    def __init__(
        self, client: redis.Redis, keys: Keys, half_life_s: float = DEFAULT_HALF_LIFE_S
    ) -> None:
        self._redis = client
        self._keys = keys
        self._half_life_s = half_life_s  # of the owners' fair-share usage
        self._create = client.register_script(_CREATE)
        self._add_usage = client.register_script(USAGE_LUA)
        self._scan_by_name = client.register_script(SCAN_LUA)
        self._withdraw = client.register_script(WITHDRAW_LUA)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    @property
    def keys(self) -> Keys:
        return self._keys

    def create(self, record: JobRecord, max_queued: int = 0) -> bool:
        owner = record.owner or ""
        group = group_of(record)
        keys = [
            self._keys.job(record.id),
            self._keys.all_jobs,
            self._keys.jobs_by_status(record.status),
            self._keys.owner_jobs(owner),
            self._keys.owner_jobs_by_status(owner, record.status),
            self._keys.owners,
            self._keys.pending(group or "-"),
            self._keys.pending_groups,
            self._keys.scheduler_wake,
            self._keys.owner_policy(owner),
        ]
        args: list[str | float] = [
            record.to_json(),
            record.created_at,
            record.id,
            owner,
            max_queued,
            group or "",
            record.spec.gpu_count,
        ]
        created = int(self._create(keys=keys, args=args))  # 2: our own, sent again
        if created == -2:
            quota = self._redis.hget(self._keys.owner_policy(owner), "gpus")
            raise over_gpu_quota(owner, record.spec.gpu_count, quota)
        if created < 0:
            own_cap = self._redis.hget(self._keys.owner_policy(owner), "queued")
            raise over_cap(owner, int(own_cap) if own_cap else max_queued, own_cap is not None)
        return bool(created)

    def replicated(self, job_id: str, replicas: int, wait_s: float) -> int:
        return confirm_writes(self._redis, self._keys, replicas, wait_s, self._keys.job(job_id))

    def withdraw(self, record: JobRecord) -> str:
        owner = record.owner or ""
        group = group_of(record)
        keys = [
            self._keys.job(record.id),
            self._keys.pending(group) if group else "",
            self._keys.all_jobs,
            self._keys.jobs_by_status(record.status),
            self._keys.owner_jobs(owner) if owner else "",
            self._keys.owner_jobs_by_status(owner, record.status) if owner else "",
        ]
        return str(self._withdraw(keys=keys, args=[record.id]))

    def get(self, job_id: str) -> JobRecord:
        raw = self._redis.get(self._keys.job(job_id))
        if raw is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return JobRecord.from_json(raw)

    def update(self, job_id: str, mutate: Mutation) -> JobRecord:
        key = self._keys.job(job_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFound(f"no job with id {job_id!r}")
                    current = JobRecord.from_json(raw)
                    new = mutate(current)
                    check_transition(current.status, new.status)
                    pipe.multi()
                    pipe.set(key, new.to_json())
                    if new.status != current.status:
                        pipe.zrem(self._keys.jobs_by_status(current.status), job_id)
                        pipe.zadd(self._keys.jobs_by_status(new.status), {job_id: new.created_at})
                        if new.owner is not None:
                            was = self._keys.owner_jobs_by_status(new.owner, current.status)
                            now = self._keys.owner_jobs_by_status(new.owner, new.status)
                            pipe.zrem(was, job_id)
                            pipe.zadd(now, {job_id: new.created_at})
                    if just_finished(current, new):
                        for name, amount in increments(new).items():
                            pipe.hincrbyfloat(self._keys.totals, name, amount)
                        if new.owner is not None:
                            owner_totals = self._keys.owner_totals(new.owner)
                            for name, amount in owner_increments(new).items():
                                pipe.hincrbyfloat(owner_totals, name, amount)
                    queue_ops(pipe, self._keys, current, new, self._add_usage,
                              self._half_life_s, time.time())  # fmt: skip
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue

    def list(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
        name: str | None = None,
    ) -> JobPage:
        index = self._index(status, owner)
        position = decode_cursor(cursor) if cursor is not None else None
        if name:
            args = scan_args(position, name, limit, self._keys.job(""))
            answer = cast(list[str], self._scan_by_name(keys=[index], args=args))
            return scanned_page(answer, limit)
        top: float | str = "+inf" if position is None else position[0]
        ids: list[str] = []
        offset = 0
        # Entries that share the cursor's score and sort before it are skipped: page on
        # until the page is full or the index ends, however many ties there are.
        while len(ids) <= limit:
            entries = cast(
                list[tuple[str, float]],
                self._redis.zrevrangebyscore(
                    index, top, "-inf", start=offset, num=limit + 1 + _TIE_SLACK, withscores=True
                ),
            )
            if not entries:
                break
            offset += len(entries)
            ids += [i for i, s in entries if position is None or is_after(s, i, position)]
        ids = ids[: limit + 1]
        raws = self._redis.mget([self._keys.job(job_id) for job_id in ids]) if ids else []
        records = [JobRecord.from_json(raw) for raw in raws if raw is not None]
        page, more = records[:limit], len(records) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
        return JobPage(page, next_cursor)

    def count(self, status: JobStatus | None = None, owner: str | None = None) -> int:
        return int(self._redis.zcard(self._index(status, owner)))

    def totals(self) -> dict[str, float]:
        raw = cast(dict[str, str], self._redis.hgetall(self._keys.totals))
        return {name: float(value) for name, value in raw.items()}

    def owners(self) -> builtins.list[str]:
        return sorted(cast(set[str], self._redis.smembers(self._keys.owners)))

    def owner_totals(self, owner: str) -> dict[str, float]:
        raw = cast(dict[str, str], self._redis.hgetall(self._keys.owner_totals(owner)))
        return {name: float(value) for name, value in raw.items()}

    def _index(self, status: JobStatus | None, owner: str | None) -> str:
        if owner is not None:
            if status is None:
                return self._keys.owner_jobs(owner)
            return self._keys.owner_jobs_by_status(owner, status)
        return self._keys.all_jobs if status is None else self._keys.jobs_by_status(status)


class RedisIdempotencyKeys:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._release = client.register_script(_RELEASE_KEY)

    def release(self, key: str, job_id: str) -> None:
        self._release(keys=[self._keys.idempotency(key)], args=[job_id])

    def claim(self, key: str, job_id: str) -> str:
        name = self._keys.idempotency(key)
        if self._redis.set(name, job_id, nx=True):
            return job_id
        return str(self._redis.get(name))
