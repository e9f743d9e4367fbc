"""The runner: supervises a job's attempts through a runtime until the job is final.

One Celery message means "supervise job J". Delivery is at least once, so the
runner adopts-or-launches: an attempt the runtime still knows of is followed to its
end; only when there is none is a new attempt launched. Every attempt and how it
ended is written to the store; a transient failure is retried (with backoff, up to
``max_retries``) and resumes from the job's checkpoint directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from trainq.config import Settings
from trainq.devices import Gpus, allot
from trainq.errors import (
    IllegalTransition,
    JobNotFound,
    LaunchRefused,
    RuntimeFault,
    SupervisedElsewhere,
)
from trainq.joblog import JobLog
from trainq.logstream import LogStream, MemoryLogStream
from trainq.outcome import PERMANENT, TRANSIENT, AttemptEnd, ending, outcome
from trainq.progress import ResultLine, parse_line
from trainq.record import Attempt, JobRecord, Progress
from trainq.runtime.base import Exit, Handle, Launch, Runtime
from trainq.spec import JobSpec
from trainq.status import JobStatus
from trainq.store.base import JobStore
from trainq.supervision import Lease, Watch

log = logging.getLogger("trainq.runner")
# How long one wait() call blocks before the runner looks again.
_WAIT_SLICE_S = 5.0


@dataclass
class Runner:
    store: JobStore
    runtime: Runtime
    settings: Settings
    worker: str
    on_progress: Callable[[Progress], None] = lambda _: None
    sleep: Callable[[float], None] = time.sleep
    logs: LogStream = field(default_factory=MemoryLogStream)
    # The GPUs this worker owns: every GPU job it runs gets exactly these.
    gpus: Gpus = field(default_factory=lambda: Gpus(()))
    _metrics: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)

    def run(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        """Supervise ``job_id`` until it is final; its result, or :class:`JobFailed`.

        Raises :class:`SupervisedElsewhere` when another supervisor holds the job.
        """
        record = self._ensure_record(job_id, spec)
        if record.status.is_terminal:
            # e.g. a supervisor died before removing it; the reconciler retries if this fails
            with contextlib.suppress(RuntimeFault):
                self._clear_leftovers(record.id)
            return outcome(record)
        with Lease(self.store, job_id, self.worker, self.settings.lease_ttl_s) as lease:
            try:
                record = self._supervise_job(self.store.get(job_id), lease)
            except IllegalTransition:
                record = self.store.get(job_id)  # someone made it final meanwhile
                if not record.status.is_terminal:
                    raise
        return outcome(record)

    def _supervise_job(self, record: JobRecord, lease: Lease) -> JobRecord:
        while not record.status.is_terminal:
            if self.store.cancel_requested(record.id):
                return self._cancel(record)
            record, handle = self._adopt_or_launch(record)
            if handle is not None:
                record = self._supervise(record, handle, lease)
            if record.status == JobStatus.RETRYING:
                self._pause(record.id, self._backoff_s(len(record.attempts)))
        return record

    def _cancel(self, record: JobRecord) -> JobRecord:
        """Stop what runs of the job, then record it cancelled."""
        self._clear_leftovers(record.id)
        current = record.current_attempt
        if current is not None and current.ended_at is None:
            end = AttemptEnd(None, None, "cancelled", ends_job_as=JobStatus.CANCELLED)
            return self._end_attempt(record, end)
        reason = "cancelled on a user's request"
        return self.store.update(record.id, lambda r: r.moved_to(JobStatus.CANCELLED, error=reason))

    def _pause(self, job_id: str, seconds: float) -> None:
        """Back off before the next attempt, in slices, but not past a cancel request."""
        remaining = seconds
        while True:
            step = min(remaining, self.settings.watch_interval_s)
            self.sleep(step)
            remaining -= step
            if remaining <= 0 or self.store.cancel_requested(job_id):
                return

    def abort(self, job_id: str, reason: str) -> None:
        """Stop whatever runs of the job and record it timed out (a backstop fired)."""
        self._clear_leftovers(job_id)

        def time_out(r: JobRecord) -> JobRecord:
            attempts = r.attempts
            if attempts and attempts[-1].ended_at is None:
                closed = attempts[-1].model_copy(update={"ended_at": time.time(), "error": reason})
                attempts = [*attempts[:-1], closed]
            return r.moved_to(JobStatus.TIMED_OUT, attempts=attempts, error=reason)

        with contextlib.suppress(IllegalTransition):
            self.store.update(job_id, time_out)

    def _clear_leftovers(self, job_id: str) -> None:
        for found in self.runtime.find(job_id):
            if found.running:
                self.runtime.stop(found.handle, self.settings.stop_grace_s)
            self.runtime.remove(found.handle)

    def _ensure_record(self, job_id: str, spec: JobSpec) -> JobRecord:
        try:
            return self.store.get(job_id)
        except JobNotFound:
            # Sent without the client (e.g. a bare send_task): record it now.
            self.store.create(JobRecord(id=job_id, spec=spec))
            return self.store.get(job_id)

    def _adopt_or_launch(self, record: JobRecord) -> tuple[JobRecord, Handle | None]:
        found = sorted(self.runtime.find(record.id), key=lambda f: f.handle.attempt)
        for stale in found[:-1]:  # never two attempts at once: only the newest lives
            self.runtime.stop(stale.handle, self.settings.stop_grace_s)
            self.runtime.remove(stale.handle)
        if found:
            newest = found[-1].handle
            log.info("adopting attempt %s (%s) of job %s", newest.attempt, newest.ref, record.id)
            return self._adopt(record, newest), newest
        current = record.current_attempt
        if current is not None and current.ended_at is None:
            # Its supervisor vanished and so did the attempt: the worker was lost.
            lost = AttemptEnd(None, TRANSIENT, "worker lost: attempt no longer exists")
            record = self._end_attempt(record, lost)
            if record.status.is_terminal:
                return record, None
        return self._launch(record)

    def _adopt(self, record: JobRecord, handle: Handle) -> JobRecord:
        def mark(r: JobRecord) -> JobRecord:
            log_path = r.log_path or str(self._log_path(r))
            if r.current_attempt is not None and r.current_attempt.number == handle.attempt:
                return r.moved_to(JobStatus.RUNNING, log_path=log_path)
            attempt = self._new_attempt(handle.attempt, handle)
            attempts = [*r.attempts, attempt]
            return r.moved_to(JobStatus.RUNNING, attempts=attempts, log_path=log_path)

        return self.store.update(record.id, mark)

    def _launch(self, record: JobRecord) -> tuple[JobRecord, Handle | None]:
        number = len(record.attempts) + 1
        log_path = self._log_path(record)
        record = self.store.update(
            record.id,
            lambda r: r.moved_to(
                JobStatus.RUNNING,
                attempts=[*r.attempts, self._new_attempt(number, record=r)],
                log_path=str(log_path),
            ),
        )
        try:
            launch = self._launch_of(record, number)
            handle = self.runtime.start(launch)
            log.info("launched attempt %s of job %s: %s", number, record.id, handle.ref)
        except RuntimeFault as exc:
            log.warning("attempt %s of job %s could not start: %s", number, record.id, exc)
            failure = PERMANENT if isinstance(exc, LaunchRefused) else TRANSIENT
            return self._end_attempt(record, AttemptEnd(None, failure, str(exc))), None

        def set_handle(r: JobRecord) -> JobRecord:
            started = r.attempts[-1].model_copy(
                update={
                    "handle": handle.ref,
                    "image": handle.image,
                    "image_digest": handle.image_digest,
                    # The time limit counts from here: pulling an image is not the job's time.
                    "started_at": time.time(),
                }
            )
            return r.moved_to(r.status, attempts=[*r.attempts[:-1], started])

        return self.store.update(record.id, set_handle), handle

    def _supervise(self, record: JobRecord, handle: Handle, lease: Lease) -> JobRecord:
        result: dict[str, Any] | None = None
        log = JobLog(
            self._log_path(record),
            record.id,
            handle.attempt,
            stream=self.logs,
            tail_lines=self.settings.output_tail_lines,
            max_bytes=self.settings.job_log_max_bytes,
        )
        watch = Watch(
            store=self.store,
            runtime=self.runtime,
            handle=handle,
            lease=lease,
            deadline=time.time() + self._remaining_s(record),
            grace_s=self.settings.stop_grace_s,
            poll_s=self.settings.watch_interval_s,
        )
        try:
            with log, watch:
                for line in self.runtime.output(handle):
                    log.write(line)
                    message = parse_line(line)
                    if isinstance(message, ResultLine):
                        result = message.values
                    elif message is not None:
                        record = self._progress(record, message)
                    if lease.lost.is_set():
                        break
                exit_ = self._wait(handle, lease)
                log.close(f"attempt {handle.attempt} exited with code {exit_.code}")
            end = ending(handle.attempt, exit_, watch.reason, log.tail(), self._limit_s(record))
            if end.failure_class is None and end.ends_job_as is None:
                end = dataclasses.replace(end, result=self._result(record, result))
            end = dataclasses.replace(end, run_s=exit_.ran_s)
        except RuntimeFault as exc:
            end = AttemptEnd(None, TRANSIENT, f"lost track of the attempt: {exc}")
        # Record, then remove (the design's order): the outcome is known now, and removing
        # a container takes the engine tens of ms. The next attempt is launched only after
        # this removal; a removal that never happens is the reconciler's (job final).
        try:
            return self._end_attempt(record, end)
        finally:
            with contextlib.suppress(RuntimeFault):  # nothing left to free; outcome known
                self.runtime.remove(handle)

    def _limit_s(self, record: JobRecord) -> int:
        return record.spec.timeout_s or self.settings.default_timeout_s

    def _remaining_s(self, record: JobRecord) -> float:
        """Time left of the job's limit, counted from its first attempt's start."""
        first = record.attempts[0].started_at if record.attempts else None
        return (first or time.time()) + self._limit_s(record) - time.time()

    def _wait(self, handle: Handle, lease: Lease) -> Exit:
        while True:
            if lease.lost.is_set():
                raise SupervisedElsewhere(f"lost the lease of job {handle.job_id}")
            exit_ = self.runtime.wait(handle, _WAIT_SLICE_S)
            if exit_ is not None:
                return exit_

    def _progress(self, record: JobRecord, progress: Progress) -> JobRecord:
        if progress.epoch is not None:
            self._metrics[progress.epoch] = progress.model_dump(exclude_none=True)
        self.on_progress(progress)
        return self.store.update(record.id, lambda r: r.moved_to(r.status, progress=progress))

    def _result(self, record: JobRecord, reported: dict[str, Any] | None) -> dict[str, Any]:
        values = dict(reported or {})
        history = values.pop("history", None)
        metrics = history if isinstance(history, list) else list(self._metrics.values())
        checkpoint_dir = self._checkpoint_dir(record.id)
        reported_path = values.pop("checkpoint", None)
        checkpoint = checkpoint_dir / PurePath(reported_path).name if reported_path else None
        final_loss = values.pop("final_loss", record.progress.loss)
        return {
            **values,
            "final_loss": final_loss,
            "metrics": metrics,
            "checkpoint_path": str(checkpoint) if checkpoint else None,
            "checkpoint_dir": str(checkpoint_dir),
            "log_path": record.log_path,
        }

    def _end_attempt(self, record: JobRecord, end: AttemptEnd) -> JobRecord:
        log.info(
            "attempt of job %s ended: exit %s, %s",
            record.id, end.exit_code, end.ends_job_as or end.failure_class or "success",
        )  # fmt: skip

        def close(r: JobRecord) -> JobRecord:
            current = r.attempts[-1]
            closed = current.model_copy(
                update={
                    "ended_at": time.time(),
                    "exit_code": end.exit_code,
                    "run_s": end.run_s,
                    "failure_class": end.failure_class,
                    "error": end.error,
                }
            )
            attempts = [*r.attempts[:-1], closed]
            if end.ends_job_as is not None:
                return r.moved_to(end.ends_job_as, attempts=attempts, error=end.error)
            if end.failure_class is None:
                return r.moved_to(
                    JobStatus.SUCCEEDED, attempts=attempts, result=end.result, error=None
                )
            budget = r.spec.max_retries + 1
            if end.failure_class == TRANSIENT and len(attempts) < budget:
                return r.moved_to(JobStatus.RETRYING, attempts=attempts, error=end.error)
            why = end.error or "failed"
            if end.failure_class == TRANSIENT:
                why = f"gave up after {len(attempts)} attempts; last: {why}"
            return r.moved_to(JobStatus.FAILED, attempts=attempts, error=why)

        return self.store.update(record.id, close)

    def _launch_of(self, record: JobRecord, number: int) -> Launch:
        spec = record.spec
        return Launch(
            job_id=record.id,
            attempt=number,
            image=spec.image or self.settings.default_image,
            command=spec.command,
            env=job_env(spec),
            checkpoint_dir=self._checkpoint_dir(record.id),
            worker=self.worker,
            cpus=spec.cpus,
            memory_bytes=spec.memory_bytes,
            shm_size_bytes=spec.shm_size_bytes,
            gpu_ids=list(self._devices_for(record).ids),
        )

    def _new_attempt(
        self, number: int, handle: Handle | None = None, record: JobRecord | None = None
    ) -> Attempt:
        gpus = Gpus(())
        if record is not None:
            with contextlib.suppress(LaunchRefused):  # _launch_of refuses it, saying why
                gpus = self._devices_for(record)
        return Attempt(
            number=number,
            handle=handle.ref if handle else None,
            image=handle.image if handle else None,
            image_digest=handle.image_digest if handle else None,
            runtime=self.runtime.name,
            worker=self.worker,
            host=self.settings.hostname,
            started_at=time.time(),
            gpu_ids=list(gpus.ids),
            gpu_uuids=list(gpus.uuids),
        )

    def _devices_for(self, record: JobRecord) -> Gpus:
        return allot(record.spec, self.gpus, f"worker {self.worker}", record.queue)

    def _checkpoint_dir(self, job_id: str) -> Path:
        return (self.settings.checkpoint_dir / job_id).absolute()

    def _log_path(self, record: JobRecord) -> Path:
        folder = self.settings.job_log_dir
        if record.spec.log_dir:
            folder = self.settings.log_dir / record.spec.log_dir
        return (folder / f"{record.id}.log").absolute()

    def _backoff_s(self, failed_attempts: int) -> float:
        ceiling = self.settings.retry_backoff_s * 2 ** max(failed_attempts - 1, 0)
        jitter = random.uniform(0.5, 1.0)
        return float(min(ceiling, self.settings.retry_backoff_max_s) * jitter)


def job_env(spec: JobSpec) -> dict[str, str]:
    """The spec's hyper-parameters as the variables train.py reads, over the user's env."""
    return {
        **spec.env,
        "TRAINQ_EPOCHS": str(spec.epochs),
        "TRAINQ_BATCH_SIZE": str(spec.batch_size),
        "TRAINQ_LEARNING_RATE": repr(spec.learning_rate),
    }
