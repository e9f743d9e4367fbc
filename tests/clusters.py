"""A cluster of its own for a scheduler test: a key prefix of its own (its jobs, broker
queues, registry and admission lease), simulated GPU workers in it, jobs submitted by
direct clients (trusted) as several owners, and short or gated commands."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.harness import PREFIX, Worker, wait_until
from trainq import connections
from trainq.client import submit
from trainq.client.jobs import cancel
from trainq.config import Settings, get_settings
from trainq.errors import AlreadyFinished
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus

HOST = get_settings().hostname
# A short job that succeeds.
PROBE = [sys.executable, "-c", 'import time; time.sleep(0.2); print(\'{"trainq": "result"}\')']
# Runs until the file named by its argument exists (or 120 s pass), then succeeds.
GATED = (
    "import os, sys, time\n"
    "deadline = time.time() + 120\n"
    "while not os.path.exists(sys.argv[1]) and time.time() < deadline:\n"
    "    time.sleep(0.05)\n"
    'print(\'{"trainq": "result"}\')\n'
)


def owner(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Cluster:
    """One test's cluster: its own key prefix, its simulated GPU workers, its jobs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.settings = Settings(key_prefix=f"{PREFIX[:-1]}-sched-{uuid.uuid4().hex[:8]}:")
        self.records = connections.records(self.settings)
        self.gate = folder / "gate"  # gated jobs end once it exists
        self.gated = [sys.executable, "-c", GATED, str(self.gate)]
        self.workers: list[Worker] = []
        self.jobs: list[str] = []

    def worker_name(self, gpu: int) -> str:
        return f"gpu{gpu}-{os.getpid()}-{time.monotonic_ns()}@testhost"

    def start(self, gpu: int, env: dict[str, str] | None = None, name: str = "") -> Worker:
        """A worker owning simulated GPU ``gpu`` (one job at a time), in this cluster."""
        name = name or self.worker_name(gpu)
        cluster_env = {"TRAINQ_KEY_PREFIX": self.settings.key_prefix, "TRAINQ_SIMULATE_GPUS": "1"}
        worker = Worker(
            name,
            self.folder / f"{name.split('@')[0]}.log",
            {**cluster_env, **(env or {})},
            args=["--gpus", str(gpu)],
        )
        self.workers.append(worker)
        worker.start()
        return worker

    def submit(self, who: str, command: list[str], **spec: Any) -> str:
        values = {"gpu": True, "command": command, **spec}
        job_id = submit(values, settings=self.settings, owner=who)
        self.jobs.append(job_id)
        return job_id

    def get(self, job_id: str) -> JobRecord:
        return self.records.get(job_id)

    def succeeded(self, job_ids: list[str], timeout_s: float = 90) -> list[JobRecord]:
        """The jobs' records once all are final; each must have succeeded."""

        def done() -> list[JobRecord]:
            found = [self.get(i) for i in job_ids]
            return found if all(r.status.is_terminal for r in found) else []

        records = wait_until(done, timeout_s, f"{len(job_ids)} jobs to end", interval_s=0.2)
        for r in records:
            assert r.status == JobStatus.SUCCEEDED, (r.id, r.status, r.error)
        return records

    def running(self, job_id: str) -> JobRecord | None:
        r = self.get(job_id)
        return r if r.status == JobStatus.RUNNING and r.attempts[-1].started_at else None

    def close(self) -> None:
        self.gate.touch()
        for job_id in self.jobs:  # nothing of this test goes on running
            with contextlib.suppress(AlreadyFinished):
                cancel(job_id, revoke=lambda _: None, records=self.records,
                       coordination=connections.coordination(self.settings))  # fmt: skip
        for worker in self.workers:
            worker.stop()


def start_of(record: JobRecord) -> float:
    started = record.attempts[0].started_at
    assert started is not None, record.id
    return started


def in_start_order(records: list[JobRecord]) -> list[str]:
    return [r.id for r in sorted(records, key=start_of)]
