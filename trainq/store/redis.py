"""The job store in Redis: one JSON string per job, plus sorted-set indexes.

``jobs:all`` and ``jobs:status:<status>`` hold job ids scored by creation time, so
listing (all, or by status, newest first) never scans the key space. Updates are
optimistic transactions (WATCH/MULTI): the record and its status index change
together or not at all.
"""

from __future__ import annotations

from typing import cast

import redis

from trainq.errors import JobNotFound
from trainq.keys import Keys
from trainq.record import JobRecord
from trainq.status import JobStatus, check_transition
from trainq.store.base import JobPage, Mutation, decode_cursor, encode_cursor, is_after

# Extra ids fetched per page to step over records created in the same instant.
_TIE_SLACK = 32


class RedisJobStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisJobStore:
        return cls(redis.Redis.from_url(url, decode_responses=True), Keys(prefix))

    def create(self, record: JobRecord) -> bool:
        key = self._keys.job(record.id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    if pipe.exists(key):
                        return False
                    pipe.multi()
                    pipe.set(key, record.to_json())
                    pipe.zadd(self._keys.all_jobs, {record.id: record.created_at})
                    pipe.zadd(
                        self._keys.jobs_by_status(record.status), {record.id: record.created_at}
                    )
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

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
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue

    def list(
        self, status: JobStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        index = self._keys.all_jobs if status is None else self._keys.jobs_by_status(status)
        position = decode_cursor(cursor) if cursor is not None else None
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

    def count(self, status: JobStatus | None = None) -> int:
        index = self._keys.all_jobs if status is None else self._keys.jobs_by_status(status)
        return int(self._redis.zcard(index))

    def claim_idempotency_key(self, key: str, job_id: str) -> str:
        name = self._keys.idempotency(key)
        if self._redis.set(name, job_id, nx=True):
            return job_id
        return str(self._redis.get(name))
