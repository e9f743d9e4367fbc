"""The runner: supervises a job's attempts through a runtime until the job is final.

One Celery message means "supervise job J". Delivery is at least once, so the
runner adopts-or-launches: an attempt the runtime still knows of is followed to its
end (its output resumed where the last supervisor's capture stopped); only when
there is none is a new attempt launched. Every attempt and how it ended is written
to the store; a transient failure is retried (with backoff, up to ``max_retries``)
and resumes from the job's checkpoint directory. An attempt the scheduler asked to
yield ends this supervision: the job is pending again (:class:`Preempted`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainq.config import Settings
from trainq.errors import (
    IllegalTransition,
    JobNotFound,
    LaunchRefused,
    Preempted,
    RuntimeFault,
)
from trainq.jobs.progress import ResultLine, protocol_messages
from trainq.jobs.record import Attempt, JobRecord, Progress
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.logs.series import MemoryMetricSeries, MetricSeries, point_of
from trainq.logs.stream import LogStream, MemoryLogStream
from trainq.logs.writer import JobLog
from trainq.runtime.base import Handle, Runtime, discard
from trainq.store.protocols import Coordination, JobRecords
from trainq.worker import attempts
from trainq.worker.devices import Gpus, allot
from trainq.worker.endings import PERMANENT, TRANSIENT, AttemptEnd, ending
from trainq.worker.supervision import Lease, Watch, wait_for_exit, wait_for_runtime
from trainq.worker.transfers import AttemptFiles

log = logging.getLogger("trainq.runner")


@dataclass
class Runner:
    records: JobRecords
    coordination: Coordination
    runtime: Runtime
    settings: Settings
    worker: str
    on_progress: Callable[[Progress], None] = lambda _: None
    sleep: Callable[[float], None] = time.sleep
    logs: LogStream = field(default_factory=MemoryLogStream)
    # Each progress line's numbers, for the job's curves (GET /train/{id}/metrics).
    series: MetricSeries = field(default_factory=MemoryMetricSeries)
    # The GPUs this worker owns: every GPU job it runs gets exactly these.
    gpus: Gpus = field(default_factory=lambda: Gpus(()))
    # The artifact store's part: checkpoints restored and synced, outputs and logs kept.
    files: AttemptFiles | None = None
    _metrics: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._files = self.files or AttemptFiles(None, self.settings)

    def run(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        """Supervise ``job_id`` until it is final; its result, or :class:`JobFailed`.

        Raises :class:`SupervisedElsewhere` when another supervisor holds the job, and
        :class:`Preempted` when it yielded to a higher-priority job (pending again).
        """
        record = self._ensure_record(job_id, spec)
        if record.status.is_terminal:
            # e.g. a supervisor died before removing it; the reconciler retries if this fails
            with contextlib.suppress(RuntimeFault):
                self._clear_leftovers(record.id)
            return record.outcome()
        ttl_s = self.settings.lease_ttl_s
        with Lease(self.coordination, job_id, self.worker, ttl_s) as lease:
            try:
                record = self._supervise_job(self.records.get(job_id), lease)
            except IllegalTransition:
                record = self.records.get(job_id)  # someone made it final meanwhile
                if not record.status.is_terminal:
                    raise
        if record.status == JobStatus.QUEUED:
            raise Preempted(f"job {job_id} yielded to a higher-priority job: pending again")
        return record.outcome()

    def abort(self, job_id: str, reason: str) -> None:
        """Stop whatever runs of the job and record it timed out (a backstop fired)."""
        self._clear_leftovers(job_id)

        with contextlib.suppress(IllegalTransition):
            self.records.update(job_id, lambda r: attempts.timed_out(r, reason))

    def _supervise_job(self, record: JobRecord, lease: Lease) -> JobRecord:
        # A yield request from before this supervisor (the attempt it was meant for
        # ended) must not stop the attempt about to run.
        self.coordination.clear_yield(record.id)
        while not record.status.is_terminal:
            if self.coordination.cancel_requested(record.id):
                return self._cancel(record)
            try:
                record, handle, adopted = self._adopt_or_launch(record)
            except RuntimeFault as fault:  # not even a look at the job's attempts
                patience_s = self.settings.runtime_patience_s
                wait_for_runtime(self.runtime, self.coordination, record.id, fault, patience_s,
                                 self.sleep)  # fmt: skip
                continue
            if handle is not None:
                record = self._supervise(record, handle, lease, adopted)
                if record.status == JobStatus.QUEUED:  # yielded: pending again
                    self.coordination.clear_yield(record.id)
                    return record
            if record.status == JobStatus.RETRYING:
                self._pause(record.id, attempts.backoff_s(self.settings, len(record.attempts)))
        return record

    def _cancel(self, record: JobRecord) -> JobRecord:
        """Stop what runs of the job, then record it cancelled."""
        self._clear_leftovers(record.id)
        current = record.current_attempt
        if current is not None and current.ended_at is None:
            end = AttemptEnd(None, None, "cancelled", ends_job_as=JobStatus.CANCELLED)
            return self._end_attempt(record, end)
        why = "cancelled on a user's request"
        return self.records.update(record.id, lambda r: r.moved_to(JobStatus.CANCELLED, error=why))

    def _pause(self, job_id: str, seconds: float) -> None:
        """Back off before the next attempt, in slices, but not past a cancel request."""
        remaining = seconds
        while True:
            step = min(remaining, self.settings.watch_interval_s)
            self.sleep(step)
            remaining -= step
            if remaining <= 0 or self.coordination.cancel_requested(job_id):
                return

    def _clear_leftovers(self, job_id: str) -> None:
        for found in self.runtime.find(job_id):
            discard(self.runtime, found, self.settings.stop_grace_s)

    def _ensure_record(self, job_id: str, spec: JobSpec) -> JobRecord:
        try:
            return self.records.get(job_id)
        except JobNotFound:
            # Sent without the client (e.g. a bare send_task): record it now, as sent.
            now = time.time()
            self.records.create(JobRecord(id=job_id, spec=spec, admitted_at=now, admissions=1))
            return self.records.get(job_id)

    def _adopt_or_launch(self, record: JobRecord) -> tuple[JobRecord, Handle | None, bool]:
        """The record, the attempt to follow (None: none could start) and whether it
        was adopted rather than launched."""
        found = sorted(self.runtime.find(record.id), key=lambda f: f.handle.attempt)
        for stale in found[:-1]:  # never two attempts at once: only the newest lives
            discard(self.runtime, stale, self.settings.stop_grace_s)
        if found:
            newest = found[-1].handle
            log.info("adopting attempt %s (%s) of job %s", newest.attempt, newest.ref, record.id)
            return self._adopt(record, newest), newest, True
        current = record.current_attempt
        if current is not None and current.ended_at is None:
            # Its supervisor vanished and so did the attempt: the worker was lost.
            lost = AttemptEnd(None, TRANSIENT, "worker lost: attempt no longer exists")
            record = self._end_attempt(record, lost)
            if record.status.is_terminal:
                return record, None, False
        record, handle = self._launch(record)
        return record, handle, False

    def _adopt(self, record: JobRecord, handle: Handle) -> JobRecord:
        def mark(r: JobRecord) -> JobRecord:
            path = r.log_path or str(attempts.log_path(self.settings, r))
            if r.current_attempt is not None and r.current_attempt.number == handle.attempt:
                return r.moved_to(JobStatus.RUNNING, log_path=path)
            attempt = self._new_attempt(handle.attempt, Gpus(()), handle)
            return r.moved_to(JobStatus.RUNNING, attempts=[*r.attempts, attempt], log_path=path)

        return self.records.update(record.id, mark)

    def _launch(self, record: JobRecord) -> tuple[JobRecord, Handle | None]:
        number = len(record.attempts) + 1
        gpus = Gpus(())
        with contextlib.suppress(LaunchRefused):  # launch_of refuses it below, saying why
            gpus = self._devices_for(record)
        path = str(attempts.log_path(self.settings, record))
        record = self.records.update(
            record.id,
            lambda r: r.moved_to(
                JobStatus.RUNNING,
                attempts=[*r.attempts, self._new_attempt(number, gpus)],
                log_path=path,
            ),
        )
        try:
            launch = attempts.launch_of(
                record, number, self.settings, self.worker, self._devices_for(record)
            )
            restored = self._files.restore(record.id, launch.checkpoint_dir)
            handle = self.runtime.start(launch)
            log.info("launched attempt %s of job %s: %s", number, record.id, handle.ref)
        except RuntimeFault as exc:
            log.warning("attempt %s of job %s could not start: %s", number, record.id, exc)
            failure = PERMANENT if isinstance(exc, LaunchRefused) else TRANSIENT
            return self._end_attempt(record, AttemptEnd(None, failure, str(exc))), None

        started = self.records.update(record.id, lambda r: attempts.started(r, handle, restored))
        return started, handle

    def _supervise(
        self, record: JobRecord, handle: Handle, lease: Lease, adopted: bool
    ) -> JobRecord:
        result: dict[str, Any] | None = None
        # A re-attached attempt goes on after what its last supervisor had stored.
        capture = self.logs.capture(record.id) if adopted else None
        after = capture.position if capture and capture.attempt == handle.attempt else None
        try:
            output = self.runtime.output(handle, after)
            job_log = JobLog(
                attempts.log_path(self.settings, record),
                record.id,
                handle.attempt,
                stream=self.logs,
                tail_lines=self.settings.output_tail_lines,
                max_bytes=self.settings.job_log_max_bytes,
                position=lambda: output.position,
                resume=capture,
            )
            watch = Watch(
                coordination=self.coordination,
                runtime=self.runtime,
                handle=handle,
                lease=lease,
                deadline=time.time() + attempts.remaining_s(record, self.settings),
                grace_s=self.settings.stop_grace_s,
                poll_s=self.settings.watch_interval_s,
            )
            checkpoints = attempts.checkpoint_dir(self.settings, record.id)
            syncing = self._files.syncing(record, handle.attempt, checkpoints, job_log.path)
            with syncing as synced, job_log, watch:
                for lines in output.batches():
                    job_log.write_many(lines)
                    for message in protocol_messages(lines):
                        if isinstance(message, ResultLine):
                            result = message.values
                        else:
                            record = self._progress(record, message)
                            synced(message.epoch)  # uploads in the background, never waits
                    if lease.lost.is_set():
                        break
                exit_ = wait_for_exit(self.runtime, handle, lease)
                job_log.close(f"attempt {handle.attempt} exited with code {exit_.code}")
            limit_s = attempts.limit_s(record, self.settings)
            end = ending(handle.attempt, exit_, watch.reason, job_log.tail(), limit_s)
            if end.failure_class is None and end.ends_job_as is None:
                metrics = list(self._metrics.values())
                end = dataclasses.replace(
                    end, result=attempts.result_of(record, result, metrics, self.settings)
                )
            end = dataclasses.replace(end, run_s=exit_.ran_s)
        except RuntimeFault as exc:
            end = AttemptEnd(None, TRANSIENT, f"lost track of the attempt: {exc}")
        end = self._files.kept(record, handle.attempt, end)
        # Record, then remove (the design's order): the outcome is known now, and removing
        # a container takes the engine tens of ms. The next attempt is launched only after
        # this removal; a removal that never happens is the reconciler's (job final).
        try:
            return self._end_attempt(record, end)
        finally:
            with contextlib.suppress(RuntimeFault):  # nothing left to free; outcome known
                self.runtime.remove(handle)

    def _progress(self, record: JobRecord, progress: Progress) -> JobRecord:
        values = progress.model_dump(exclude_none=True)
        if progress.epoch is not None:
            self._metrics[progress.epoch] = values
        self.on_progress(progress)
        attempt = record.current_attempt.number if record.current_attempt else 1
        self.series.append(record.id, point_of(values, attempt, time.time()))
        return self.records.update(record.id, lambda r: r.moved_to(r.status, progress=progress))

    def _end_attempt(self, record: JobRecord, end: AttemptEnd) -> JobRecord:
        log.info(
            "attempt of job %s ended: exit %s, %s",
            record.id, end.exit_code, end.ends_job_as or end.failure_class or "success",
        )  # fmt: skip
        return self.records.update(record.id, lambda r: attempts.closed(r, end))

    def _new_attempt(self, number: int, gpus: Gpus, handle: Handle | None = None) -> Attempt:
        where = {"runtime": self.runtime.name, "worker": self.worker}
        return attempts.new_attempt(number, **where, host=self.settings.hostname, gpus=gpus,
                                    handle=handle)  # fmt: skip

    def _devices_for(self, record: JobRecord) -> Gpus:
        return allot(record.spec, self.gpus, f"worker {self.worker}", record.queue)
