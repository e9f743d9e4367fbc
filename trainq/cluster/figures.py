"""The cluster at a glance, from Redis alone: jobs, queues, totals and live workers.

Each figure is computed here, once: the API's ``/stats``, ``/health`` and
``/metrics`` and the CLI read it. None of it asks a worker over the broker, so a
busy or missing worker never slows a request.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from pydantic import BaseModel, Field

from trainq.cluster import queues
from trainq.cluster.registry import Registry, WorkerInfo
from trainq.config import Settings
from trainq.jobs.status import JobStatus
from trainq.store.redis import RedisJobRecords


class Figures(BaseModel):
    """Totals over every finished job."""

    finished: int
    succeeded: int
    failed: int
    success_rate: float | None = Field(description="succeeded / finished; null before any")
    attempts: int
    retries: int = Field(description="Attempts beyond each job's first")
    failure_classes: dict[str, int] = Field(description="Failed attempts by class")

    @classmethod
    def from_totals(cls, totals: dict[str, float]) -> Figures:
        """The figures of the store's totals hash (:mod:`trainq.store.totals`)."""
        finished = finished_by_status(totals)
        done = sum(finished.values())
        succeeded, cancelled = finished[JobStatus.SUCCEEDED], finished[JobStatus.CANCELLED]
        return cls(
            finished=done,
            succeeded=succeeded,
            failed=done - succeeded - cancelled,
            success_rate=succeeded / done if done else None,
            attempts=int(totals.get("attempts", 0)),
            retries=int(totals.get("retries", 0)),
            failure_classes={
                name.removeprefix("failure_class:"): int(value)
                for name, value in totals.items()
                if name.startswith("failure_class:")
            },
        )


def finished_by_status(totals: dict[str, float]) -> dict[JobStatus, int]:
    """How many jobs ended in each final status."""
    return {s: int(totals.get(f"finished:{s.value}", 0)) for s in JobStatus if s.is_terminal}


@dataclass(frozen=True)
class Snapshot:
    """Everything ``/stats`` shows, read at one moment."""

    jobs: dict[JobStatus, int]
    queues: dict[str, int]
    workers: list[WorkerInfo]
    figures: Figures
    finished: dict[JobStatus, int]
    durations: dict[str, float]  # the totals' duration_* entries (a histogram)


class ClusterView:
    def __init__(self, records: RedisJobRecords, registry: Registry, settings: Settings) -> None:
        self._records = records
        self._redis: redis.Redis = records.client
        self._registry = registry
        self._settings = settings

    def snapshot(self) -> Snapshot:
        workers = self.workers()
        totals = self._records.totals()
        return Snapshot(
            jobs=self.jobs_by_status(),
            queues=self.queue_lengths(workers),
            workers=workers,
            figures=Figures.from_totals(totals),
            finished=finished_by_status(totals),
            durations={k: v for k, v in totals.items() if k.startswith("duration_")},
        )

    def jobs_by_status(self) -> dict[JobStatus, int]:
        with self._redis.pipeline(transaction=False) as pipe:
            for status in JobStatus:
                pipe.zcard(self._records.keys.jobs_by_status(status))
            counts = pipe.execute()
        return dict(zip(JobStatus, (int(c) for c in counts), strict=True))

    def workers(self) -> list[WorkerInfo]:
        return self._registry.live()

    def queue_lengths(self, workers: list[WorkerInfo]) -> dict[str, int]:
        """Messages waiting in the CPU queue and in every queue a live worker serves."""
        names = {self._settings.queue}
        for worker in workers:
            names.update(worker.queues)
        return {
            name: queues.queue_length(self._redis, self._settings, name) for name in sorted(names)
        }

    def health(self, probe: redis.Redis) -> dict[str, str]:
        """'ok' or what is wrong, for Redis, the workers, their runtimes and their artifact
        store; ``probe`` is a client that gives up at once, so a dead Redis is reported
        within seconds."""
        try:
            probe.ping()
        except redis.RedisError as exc:
            unknown = {"workers": "unknown", "runtime": "unknown", "artifact_store": "unknown"}
            return {"redis": f"unreachable: {exc}", **unknown}
        workers = self.workers()
        if not workers:
            unknown = {"runtime": "unknown", "artifact_store": "unknown"}
            return {"redis": "ok", "workers": "no live worker", **unknown}
        broken = [f"{w.name}: {w.runtime_error}" for w in workers if w.runtime_error]
        runtime = "ok" if not broken else "; ".join(broken)
        cut_off = [f"{w.name}: {w.store_error}" for w in workers if w.store_error]
        store = "ok" if not cut_off else "; ".join(cut_off)
        return {"redis": "ok", "workers": "ok", "runtime": runtime, "artifact_store": store}
