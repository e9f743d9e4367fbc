"""The job store: records, coordination (leases, cancel flags, re-queue claims) and
idempotency keys; Redis in production, in-memory twins for unit tests."""

from trainq.store.memory import MemoryCoordination, MemoryIdempotencyKeys, MemoryJobRecords
from trainq.store.protocols import Coordination, IdempotencyKeys, JobPage, JobRecords, Mutation
from trainq.store.redis import RedisCoordination, RedisIdempotencyKeys, RedisJobRecords

__all__ = [
    "Coordination",
    "IdempotencyKeys",
    "JobPage",
    "JobRecords",
    "MemoryCoordination",
    "MemoryIdempotencyKeys",
    "MemoryJobRecords",
    "Mutation",
    "RedisCoordination",
    "RedisIdempotencyKeys",
    "RedisJobRecords",
]
