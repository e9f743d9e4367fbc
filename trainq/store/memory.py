"""In-memory twins of the store for unit tests: same contracts as the Redis store."""

from __future__ import annotations

import builtins
import threading
import time
from collections import defaultdict

from trainq.errors import JobNotFound
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus, check_transition
from trainq.store.name_filter import scan_page
from trainq.store.paging import decode_cursor, encode_cursor, is_after
from trainq.store.protocols import JobPage, Mutation
from trainq.store.totals import increments, just_finished, over_cap, owner_increments


class MemoryJobRecords:
    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._totals: dict[str, float] = defaultdict(float)
        self._owner_totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._owners: set[str] = set()
        self._lock = threading.Lock()
        self.replicas = 0  # how many replicas the twin says hold every write

    def create(self, record: JobRecord, max_queued: int = 0) -> bool:
        with self._lock:
            if self._records.get(record.id) == record.to_json():
                return True  # our own, sent again
            if record.owner is not None and max_queued > 0:
                queued = self._matching(record.status, record.owner)
                if len(queued) >= max_queued:
                    raise over_cap(record.owner, max_queued)
            if record.id in self._records:
                return False
            self._records[record.id] = record.to_json()
            if record.owner is not None:
                self._owners.add(record.owner)
            return True

    def replicated(self, job_id: str, replicas: int, wait_s: float) -> int:
        return min(replicas, self.replicas) if job_id in self._records else 0

    def withdraw(self, record: JobRecord) -> str:
        with self._lock:
            raw = self._records.get(record.id)
            if raw is None:
                return "absent"
            if record.pending and not JobRecord.from_json(raw).pending:
                return "taken"
            del self._records[record.id]
            return "withdrawn"

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
            if just_finished(current, new):
                for name, amount in increments(new).items():
                    self._totals[name] += amount
                if new.owner is not None:
                    for name, amount in owner_increments(new).items():
                        self._owner_totals[new.owner][name] += amount
            return new

    def list(
        self,
        status: JobStatus | None = None,
        limit: int = 50,
        cursor: str | None = None,
        owner: str | None = None,
        name: str | None = None,
    ) -> JobPage:
        with self._lock:
            records = self._matching(status, owner)
        records.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        if cursor is not None:
            position = decode_cursor(cursor)
            records = [r for r in records if is_after(r.created_at, r.id, position)]
        if name:
            return scan_page(records, name, limit)
        page = records[:limit]
        more = len(records) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
        return JobPage(page, next_cursor)

    def count(self, status: JobStatus | None = None, owner: str | None = None) -> int:
        with self._lock:
            return len(self._matching(status, owner))

    def totals(self) -> dict[str, float]:
        with self._lock:
            return {name: float(value) for name, value in self._totals.items()}

    def owners(self) -> builtins.list[str]:
        with self._lock:
            return sorted(self._owners)

    def owner_totals(self, owner: str) -> dict[str, float]:
        with self._lock:
            return dict(self._owner_totals.get(owner, {}))

    def _matching(self, status: JobStatus | None, owner: str | None) -> builtins.list[JobRecord]:
        records = [JobRecord.from_json(raw) for raw in self._records.values()]
        return [
            r
            for r in records
            if (status is None or r.status == status) and (owner is None or r.owner == owner)
        ]


class MemoryCoordination:
    def __init__(self) -> None:
        self._cancelled: set[str] = set()
        self._leases: dict[str, tuple[str, float]] = {}  # job → (value, expires at)
        self._fences: dict[str, int] = {}
        self._requeues: dict[str, float] = {}
        self._yields: dict[str, str] = {}  # job → the job it yields to
        self._lock = threading.Lock()

    def request_yield(self, job_id: str, for_job: str, ttl_s: float) -> None:
        with self._lock:
            self._yields[job_id] = for_job

    def stop_requests(self, job_id: str) -> tuple[bool, str | None]:
        with self._lock:
            return job_id in self._cancelled, self._yields.get(job_id)

    def clear_yield(self, job_id: str) -> None:
        with self._lock:
            self._yields.pop(job_id, None)

    def request_cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def acquire_lease(self, job_id: str, owner: str, ttl_s: float) -> int | None:
        with self._lock:
            if self._live_lease(job_id) is not None:
                return None
            token = self._fences[job_id] = self._fences.get(job_id, 0) + 1
            self._leases[job_id] = (f"{token}:{owner}", time.monotonic() + ttl_s)
            return token

    def renew_lease(self, job_id: str, token: int, ttl_s: float) -> bool:
        with self._lock:
            value = self._live_lease(job_id)
            if value is None or not value.startswith(f"{token}:"):
                return False
            self._leases[job_id] = (value, time.monotonic() + ttl_s)
            return True

    def release_lease(self, job_id: str, token: int) -> None:
        with self._lock:
            value = self._live_lease(job_id)
            if value is not None and value.startswith(f"{token}:"):
                del self._leases[job_id]

    def lease_holder(self, job_id: str) -> str | None:
        with self._lock:
            return self._live_lease(job_id)

    def claim_requeue(self, job_id: str, ttl_s: float) -> bool:
        with self._lock:
            now = time.monotonic()
            if self._requeues.get(job_id, 0.0) > now:
                return False
            self._requeues[job_id] = now + ttl_s
            return True

    def _live_lease(self, job_id: str) -> str | None:
        value, expires = self._leases.get(job_id, ("", 0.0))
        return value if expires > time.monotonic() else None


class MemoryIdempotencyKeys:
    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, job_id: str) -> str:
        with self._lock:
            return self._keys.setdefault(key, job_id)

    def release(self, key: str, job_id: str) -> None:
        with self._lock:
            if self._keys.get(key) == job_id:
                del self._keys[key]
