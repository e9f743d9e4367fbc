"""The reconciler: makes the containers on this host and the job records agree.

It runs in every worker's main process, once at start and then every
``reconcile_interval_s``:

- a container (of this cluster) whose job is final or unknown is stopped and
  removed: nothing a finished job started outlives it;
- logs that stopped growing are compressed, those past retention deleted; the
  artifacts of jobs final for longer than ``artifact_retention_days`` are deleted;
- a running or retrying job whose supervisor's lease expired (the worker was
  killed, its host died) is sent to the queue again, so a live worker adopts its
  container or relaunches it from the checkpoint within seconds, instead of after
  the broker's visibility timeout (hours); when the user had asked to cancel it,
  the reconciler finishes the cancel itself (a revoked message is never run).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trainq.artifacts import retention as artifact_retention
from trainq.artifacts.store import ArtifactStore
from trainq.config import Settings
from trainq.errors import IllegalTransition, JobNotFound, RuntimeFault
from trainq.jobs.record import JobRecord
from trainq.jobs.status import JobStatus
from trainq.logs import retention
from trainq.runtime.base import Runtime, discard
from trainq.store.paging import every_job
from trainq.store.protocols import Coordination, JobRecords

log = logging.getLogger("trainq.reconciler")

# How often a worker deletes the artifacts of jobs past artifact_retention_days.
_ARTIFACT_SWEEP_S = 3600.0
# How long one reconciler's claim to re-queue a job keeps others from doing it too.
_REQUEUE_CLAIM_S = 30.0


@dataclass
class Pass:
    """What one reconcile pass did."""

    removed: list[str] = field(default_factory=list)  # container/process refs
    requeued: list[str] = field(default_factory=list)  # job ids
    cancelled: list[str] = field(default_factory=list)  # job ids
    compressed: int = 0  # log files
    deleted: int = 0  # log files past retention
    expired: list[str] = field(default_factory=list)  # jobs whose artifacts were deleted


@dataclass
class Reconciler:
    records: JobRecords
    coordination: Coordination
    runtime: Runtime
    settings: Settings
    requeue: Callable[[JobRecord], None]
    artifacts: ArtifactStore | None = None
    _expired_at: float = field(default=0.0, init=False)

    def run_once(self) -> Pass:
        done = Pass()
        self._remove_orphans(done)
        self._rescue_unsupervised(done)
        swept = retention.sweep(
            self.settings.log_dir,
            self.settings.log_retention_days,
            still_written=self._job_not_final,
        )
        done.compressed, done.deleted = len(swept.compressed), len(swept.deleted)
        done.expired = self._expire_artifacts()
        if done.removed or done.requeued or done.cancelled or done.compressed or done.deleted:
            log.info("reconciled: %s", done)
        return done

    def loop(self, stop: threading.Event) -> None:
        """Pass after pass until ``stop`` is set; a failing pass is logged, not fatal."""
        while True:
            try:
                self.run_once()
            except Exception:
                log.exception("reconcile pass failed; trying again next time")
            if stop.wait(self.settings.reconcile_interval_s):
                return

    def _expire_artifacts(self) -> list[str]:
        """Past ``artifact_retention_days``, a finished job's artifacts go (hourly)."""
        days = self.settings.artifact_retention_days
        if self.artifacts is None or days is None:
            return []
        if time.monotonic() - self._expired_at < _ARTIFACT_SWEEP_S and self._expired_at:
            return []
        self._expired_at = time.monotonic()
        return artifact_retention.expire(self.artifacts, self.records, days)

    def _job_not_final(self, log: Path) -> bool:
        """Whether ``log`` is a job log (jobs/<id>.log) whose job may still write to it."""
        if log.parent.name != "jobs":
            return False
        try:
            return not self.records.get(log.stem).status.is_terminal
        except JobNotFound:
            return False

    def _remove_orphans(self, done: Pass) -> None:
        for found in self.runtime.find():
            try:
                final = self.records.get(found.handle.job_id).status.is_terminal
            except JobNotFound:
                final = True
            if not final:
                continue
            with contextlib.suppress(RuntimeFault):
                discard(self.runtime, found, self.settings.stop_grace_s)
                done.removed.append(found.handle.ref)

    def _rescue_unsupervised(self, done: Pass) -> None:
        for record in self._active_jobs():
            if self.coordination.lease_holder(record.id) is not None:
                continue
            if not self.coordination.claim_requeue(record.id, _REQUEUE_CLAIM_S):
                continue
            if self.coordination.cancel_requested(record.id):
                self._finish_cancel(record, done)
            else:
                self.requeue(record)
                done.requeued.append(record.id)

    def _finish_cancel(self, record: JobRecord, done: Pass) -> None:
        for found in self.runtime.find(record.id):
            with contextlib.suppress(RuntimeFault):
                discard(self.runtime, found, self.settings.stop_grace_s)
        reason = "cancelled on a user's request (its supervisor was gone)"
        with contextlib.suppress(IllegalTransition):
            self.records.update(record.id, lambda r: r.moved_to(JobStatus.CANCELLED, error=reason))
            done.cancelled.append(record.id)

    def _active_jobs(self) -> Iterator[JobRecord]:
        for status in (JobStatus.RUNNING, JobStatus.RETRYING):
            yield from every_job(self.records, status)
