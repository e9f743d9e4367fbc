"""In-memory job store for unit tests: same contract as the Redis store."""

from __future__ import annotations

import threading

from trainq.errors import JobNotFound
from trainq.record import JobRecord
from trainq.status import JobStatus, check_transition
from trainq.store.base import JobPage, Mutation, decode_cursor, encode_cursor, is_after


class MemoryJobStore:
    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._idempotency: dict[str, str] = {}
        self._lock = threading.Lock()

    def create(self, record: JobRecord) -> bool:
        with self._lock:
            if record.id in self._records:
                return False
            self._records[record.id] = record.to_json()
            return True

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            raw = self._records.get(job_id)
        if raw is None:
            raise JobNotFound(f"no job with id {job_id!r}")
        return JobRecord.from_json(raw)

    def update(self, job_id: str, mutate: Mutation) -> JobRecord:
        with self._lock:
            raw = self._records.get(job_id)
            if raw is None:
                raise JobNotFound(f"no job with id {job_id!r}")
            current = JobRecord.from_json(raw)
            new = mutate(current)
            check_transition(current.status, new.status)
            self._records[job_id] = new.to_json()
            return new

    def list(
        self, status: JobStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        with self._lock:
            records = [JobRecord.from_json(raw) for raw in self._records.values()]
        if status is not None:
            records = [r for r in records if r.status == status]
        records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        if cursor is not None:
            position = decode_cursor(cursor)
            records = [r for r in records if is_after(r.created_at, r.id, position)]
        page = records[:limit]
        more = len(records) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
        return JobPage(page, next_cursor)

    def count(self, status: JobStatus | None = None) -> int:
        with self._lock:
            records = [JobRecord.from_json(raw) for raw in self._records.values()]
        return sum(1 for r in records if status is None or r.status == status)

    def claim_idempotency_key(self, key: str, job_id: str) -> str:
        with self._lock:
            return self._idempotency.setdefault(key, job_id)
