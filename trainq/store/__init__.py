"""Job stores: Redis in production, an in-memory twin for unit tests."""

from trainq.store.base import JobPage, JobStore, Mutation
from trainq.store.memory import MemoryJobStore
from trainq.store.redis import RedisJobStore

__all__ = ["JobPage", "JobStore", "MemoryJobStore", "Mutation", "RedisJobStore"]
