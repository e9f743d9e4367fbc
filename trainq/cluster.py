"""The cluster at a glance, from Redis alone: jobs, queues, totals and live workers.

The API's ``/stats``, ``/health`` and ``/metrics`` read it; none of it asks a
worker over the broker, so a busy or missing worker never slows a request.
"""

from __future__ import annotations

import redis

from trainq import backlog
from trainq.config import Settings
from trainq.status import JobStatus
from trainq.store.redis import RedisJobStore
from trainq.workers import WorkerInfo, live_workers


class ClusterView:
    def __init__(self, store: RedisJobStore, settings: Settings) -> None:
        self._store = store
        self._redis: redis.Redis = store.client
        self._settings = settings

    def jobs_by_status(self) -> dict[JobStatus, int]:
        with self._redis.pipeline(transaction=False) as pipe:
            for status in JobStatus:
                pipe.zcard(self._store.keys.jobs_by_status(status))
            counts = pipe.execute()
        return dict(zip(JobStatus, (int(c) for c in counts), strict=True))

    def totals(self) -> dict[str, float]:
        return self._store.totals()

    def workers(self) -> list[WorkerInfo]:
        return live_workers(self._settings)

    def queue_lengths(self, workers: list[WorkerInfo] | None = None) -> dict[str, int]:
        """Messages waiting in the CPU queue and in every queue a live worker serves."""
        names = {self._settings.queue}
        for worker in self.workers() if workers is None else workers:
            names.update(worker.queues)
        return {name: self.queue_length(name) for name in sorted(names)}

    def queue_length(self, queue: str) -> int:
        return backlog.queue_length(self._redis, self._settings, queue)

    def health(self) -> dict[str, str]:
        """'ok' or what is wrong, for Redis, the workers and their runtimes."""
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            return {"redis": f"unreachable: {exc}", "workers": "unknown", "runtime": "unknown"}
        workers = self.workers()
        if not workers:
            return {"redis": "ok", "workers": "no live worker", "runtime": "unknown"}
        broken = [f"{w.name}: {w.runtime_error}" for w in workers if w.runtime_error]
        runtime = "ok" if not broken else "; ".join(broken)
        return {"redis": "ok", "workers": "ok", "runtime": runtime}
