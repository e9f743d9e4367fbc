"""The runner: supervises a job's attempts through a runtime until the job is final.

One Celery message means "supervise job J". Delivery is at least once, so the
runner adopts-or-launches: an attempt the runtime still knows of is followed to its
end; only when there is none is a new attempt launched. Every attempt and how it
ended is written to the store; a transient failure is retried (with backoff, up to
``max_retries``) and resumes from the job's checkpoint directory.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from trainq.config import Settings
from trainq.errors import JobFailed, JobNotFound, LaunchRefused, RuntimeFault
from trainq.joblog import JobLog
from trainq.progress import ResultLine, parse_line
from trainq.record import Attempt, JobRecord, Progress
from trainq.runtime.base import EXIT_PREEMPTED, Exit, Handle, Launch, Runtime
from trainq.spec import JobSpec
from trainq.status import JobStatus
from trainq.store.base import JobStore

TRANSIENT = "transient"
PERMANENT = "permanent"
# How long one wait() call blocks before the runner looks again.
_WAIT_SLICE_S = 5.0


@dataclass(frozen=True)
class AttemptEnd:
    """How one attempt ended, classified."""

    exit_code: int | None
    failure_class: str | None = None  # None: success
    error: str | None = None
    result: dict[str, Any] | None = None
    timed_out: bool = False


@dataclass
class Runner:
    store: JobStore
    runtime: Runtime
    settings: Settings
    worker: str
    on_progress: Callable[[Progress], None] = lambda _: None
    sleep: Callable[[float], None] = time.sleep
    _metrics: dict[int, dict[str, Any]] = field(default_factory=dict, init=False)

    def run(self, job_id: str, spec: JobSpec) -> dict[str, Any]:
        """Supervise ``job_id`` until it is final; its result, or :class:`JobFailed`."""
        record = self._ensure_record(job_id, spec)
        if record.status.is_terminal:
            self._clear_leftovers(record.id)  # e.g. a supervisor died before removing it
        while not record.status.is_terminal:
            record, handle = self._adopt_or_launch(record)
            if handle is not None:
                record = self._supervise(record, handle)
            if record.status == JobStatus.RETRYING:
                self.sleep(self._backoff_s(len(record.attempts)))
        return outcome(record)

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
            return self._adopt(record, found[-1].handle), found[-1].handle
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
                attempts=[*r.attempts, self._new_attempt(number)],
                log_path=str(log_path),
            ),
        )
        launch = self._launch_of(record, number)
        try:
            handle = self.runtime.start(launch)
        except RuntimeFault as exc:
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

    def _supervise(self, record: JobRecord, handle: Handle) -> JobRecord:
        result: dict[str, Any] | None = None
        log = JobLog(self._log_path(record), handle.attempt, self.settings.output_tail_lines)
        limit = _TimeLimit(self.runtime, handle, self._remaining_s(record), self.settings)
        try:
            with log, limit:
                for line in self.runtime.output(handle):
                    log.write(line)
                    message = parse_line(line)
                    if isinstance(message, ResultLine):
                        result = message.values
                    elif message is not None:
                        record = self._progress(record, message)
                exit_ = self._wait(handle)
                log.close(f"attempt {handle.attempt} exited with code {exit_.code}")
            if limit.reached and exit_.code != 0:
                end = self._timed_out(record, handle.attempt, exit_, log.tail())
            else:
                end = self._classify(record, handle.attempt, exit_, log.tail(), result)
        except RuntimeFault as exc:
            end = AttemptEnd(None, TRANSIENT, f"lost track of the attempt: {exc}")
        with contextlib.suppress(RuntimeFault):  # nothing left to free; outcome known
            self.runtime.remove(handle)
        return self._end_attempt(record, end)

    def _remaining_s(self, record: JobRecord) -> float:
        """Time left of the job's limit, counted from its first attempt's start."""
        limit_s = record.spec.timeout_s or self.settings.default_timeout_s
        first = record.attempts[0].started_at if record.attempts else None
        return (first or time.time()) + limit_s - time.time()

    def _timed_out(
        self, record: JobRecord, attempt: int, exit_: Exit, tail: list[str]
    ) -> AttemptEnd:
        limit_s = record.spec.timeout_s or self.settings.default_timeout_s
        shown = "\n".join(tail) if tail else "(no output)"
        error = (
            f"attempt {attempt} reached the job's time limit of {limit_s} s and was stopped "
            f"(exit {exit_.code}); its last checkpoint is kept; last output:\n{shown}"
        )
        return AttemptEnd(exit_.code, PERMANENT, error, timed_out=True)

    def _wait(self, handle: Handle) -> Exit:
        while True:
            exit_ = self.runtime.wait(handle, _WAIT_SLICE_S)
            if exit_ is not None:
                return exit_

    def _progress(self, record: JobRecord, progress: Progress) -> JobRecord:
        if progress.epoch is not None:
            self._metrics[progress.epoch] = progress.model_dump(exclude_none=True)
        self.on_progress(progress)
        return self.store.update(record.id, lambda r: r.moved_to(r.status, progress=progress))

    def _classify(
        self,
        record: JobRecord,
        attempt: int,
        exit_: Exit,
        tail: list[str],
        result: dict[str, Any] | None,
    ) -> AttemptEnd:
        if exit_.code == 0:
            return AttemptEnd(0, result=self._result(record, result))
        if exit_.oom_killed:
            reason, failure = "was killed for exceeding its memory limit", PERMANENT
        elif exit_.code == EXIT_PREEMPTED:
            reason, failure = "was preempted after checkpointing (exit 75)", TRANSIENT
        else:
            reason, failure = f"exited with code {exit_.code}", PERMANENT
        shown = "\n".join(tail) if tail else "(no output)"
        error = f"attempt {attempt} {reason}; last output:\n{shown}"
        return AttemptEnd(exit_.code, failure, error)

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
        def close(r: JobRecord) -> JobRecord:
            current = r.attempts[-1]
            closed = current.model_copy(
                update={
                    "ended_at": time.time(),
                    "exit_code": end.exit_code,
                    "failure_class": end.failure_class,
                    "error": end.error,
                }
            )
            attempts = [*r.attempts[:-1], closed]
            if end.failure_class is None:
                return r.moved_to(
                    JobStatus.SUCCEEDED, attempts=attempts, result=end.result, error=None
                )
            if end.timed_out:
                return r.moved_to(JobStatus.TIMED_OUT, attempts=attempts, error=end.error)
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
            gpu_ids=list(spec.gpu_ids),
        )

    def _new_attempt(self, number: int, handle: Handle | None = None) -> Attempt:
        return Attempt(
            number=number,
            handle=handle.ref if handle else None,
            image=handle.image if handle else None,
            image_digest=handle.image_digest if handle else None,
            runtime=self.runtime.name,
            worker=self.worker,
            host=self.settings.hostname,
            started_at=time.time(),
        )

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


class _TimeLimit:
    """Stops the attempt (SIGTERM, grace, SIGKILL) when the job's time is up."""

    def __init__(self, runtime: Runtime, handle: Handle, remaining_s: float, settings: Settings):
        self.reached = False
        self._runtime = runtime
        self._handle = handle
        self._grace_s = settings.stop_grace_s
        self._timer = threading.Timer(max(remaining_s, 0.0), self._stop)
        self._timer.daemon = True

    def _stop(self) -> None:
        self.reached = True
        self._runtime.stop(self._handle, self._grace_s)

    def __enter__(self) -> _TimeLimit:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def job_env(spec: JobSpec) -> dict[str, str]:
    """The spec's hyper-parameters as the variables train.py reads, over the user's env."""
    return {
        **spec.env,
        "TRAINQ_EPOCHS": str(spec.epochs),
        "TRAINQ_BATCH_SIZE": str(spec.batch_size),
        "TRAINQ_LEARNING_RATE": repr(spec.learning_rate),
    }


def outcome(record: JobRecord) -> dict[str, Any]:
    """A final record's result, or :class:`JobFailed` carrying its status and error."""
    if record.status == JobStatus.SUCCEEDED:
        return record.result or {}
    raise JobFailed(f"job {record.id} {record.status}: {record.error or 'no reason recorded'}")
