"""One attempt of a job, as the runner prepares and closes it: its launch (image,
command, environment, checkpoint and output directories, datasets, devices), its
record, its result, and what its end makes of the job (retry, succeed, fail)."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path, PurePath
from typing import Any

from trainq.config import Settings
from trainq.errors import ConfigError, LaunchRefused
from trainq.jobs.failures import FailureClass
from trainq.jobs.record import Attempt, JobRecord
from trainq.jobs.spec import JobSpec
from trainq.jobs.status import JobStatus
from trainq.runtime.base import OUTPUT_MOUNT, Handle, Launch
from trainq.worker.devices import Gpus
from trainq.worker.endings import AttemptEnd


def job_env(spec: JobSpec) -> dict[str, str]:
    """The spec's hyper-parameters as the variables train.py reads, over the user's env."""
    return {
        **spec.env,
        "TRAINQ_EPOCHS": str(spec.epochs),
        "TRAINQ_BATCH_SIZE": str(spec.batch_size),
        "TRAINQ_LEARNING_RATE": repr(spec.learning_rate),
    }


def checkpoint_dir(settings: Settings, job_id: str) -> Path:
    return (settings.checkpoint_dir / job_id).absolute()


def output_dir(settings: Settings, job_id: str, attempt: int) -> Path:
    """Where the attempt writes what it produces (``/outputs`` in a container)."""
    return (settings.output_dir / job_id / str(attempt)).absolute()


# Where the worker uploads an attempt's output directory in the job's artifacts.
OUTPUTS_ARTIFACT_DIR = "outputs"


def dataset_dirs(spec: JobSpec, settings: Settings) -> dict[str, Path]:
    """The host paths of the job's datasets, as this worker's host declares them;
    LaunchRefused for one it does not declare (any more) or whose path is missing."""
    if not spec.datasets:
        return {}
    try:
        declared = settings.dataset_paths
    except ConfigError as exc:
        raise LaunchRefused(f"this worker's datasets are misconfigured: {exc}") from exc
    found: dict[str, Path] = {}
    for name in spec.datasets:
        path = declared.get(name)
        if path is None:
            raise LaunchRefused(
                f"dataset {name!r} is not declared on this worker's host (TRAINQ_DATASETS)"
            )
        if not path.exists():
            raise LaunchRefused(f"dataset {name!r}: its host path {path} does not exist")
        found[name] = path
    return found


def model_artifact(reported: str, outputs: Path) -> str:
    """The artifact path of a model the program reported in its output directory, which
    it saw as ``/outputs`` in a container or as the host path; the worker uploads that
    directory under ``outputs/``."""
    path = PurePath(reported)
    for folder in (outputs, PurePath(OUTPUT_MOUNT)):
        if path.is_relative_to(folder) and path != folder:
            return f"{OUTPUTS_ARTIFACT_DIR}/{path.relative_to(folder).as_posix()}"
    return f"{OUTPUTS_ARTIFACT_DIR}/{path.name}"


def log_path(settings: Settings, record: JobRecord) -> Path:
    folder = settings.job_log_dir
    if record.spec.log_dir:
        folder = settings.log_dir / record.spec.log_dir
    return (folder / f"{record.id}.log").absolute()


def limit_s(record: JobRecord, settings: Settings) -> int:
    """The job's time limit."""
    return record.spec.timeout_s or settings.default_timeout_s


def remaining_s(record: JobRecord, settings: Settings) -> float:
    """Time left of the job's limit, counted from its first attempt's start, less the
    time it waited pending after yielding to a higher-priority job (not its own time)."""
    first = record.attempts[0].started_at if record.attempts else None
    return (first or time.time()) + limit_s(record, settings) + yielded_s(record) - time.time()


def yielded_s(record: JobRecord) -> float:
    """How long the job waited between each preempted attempt and the next one."""
    waited = 0.0
    for ended, following in itertools.pairwise(record.attempts):
        if ended.failure_class == FailureClass.PREEMPTED and ended.ended_at is not None:
            waited += max((following.started_at or ended.ended_at) - ended.ended_at, 0.0)
    return waited


def launch_of(
    record: JobRecord, number: int, settings: Settings, worker: str, gpus: Gpus
) -> Launch:
    spec = record.spec
    return Launch(
        job_id=record.id,
        attempt=number,
        image=spec.image or settings.default_image,
        command=spec.command,
        env=job_env(spec),
        checkpoint_dir=checkpoint_dir(settings, record.id),
        output_dir=output_dir(settings, record.id, number),
        datasets=dataset_dirs(spec, settings),
        worker=worker,
        cpus=spec.cpus,
        memory_bytes=spec.memory_bytes,
        shm_size_bytes=spec.shm_size_bytes,
        gpu_ids=list(gpus.ids),
    )


def new_attempt(
    number: int, *, runtime: str, worker: str, host: str, gpus: Gpus, handle: Handle | None = None
) -> Attempt:
    return Attempt(
        number=number,
        handle=handle.ref if handle else None,
        image=handle.image if handle else None,
        image_digest=handle.image_digest if handle else None,
        runtime=runtime,
        worker=worker,
        host=host,
        started_at=time.time(),
        gpu_ids=list(gpus.ids),
        gpu_uuids=list(gpus.uuids),
    )


def result_of(
    record: JobRecord,
    reported: dict[str, Any] | None,
    metrics: list[dict[str, Any]],
    settings: Settings,
) -> dict[str, Any]:
    """A succeeded job's result: what its program reported, its metrics and paths."""
    values = dict(reported or {})
    history = values.pop("history", None)
    folder = checkpoint_dir(settings, record.id)
    reported_path = values.pop("checkpoint", None)
    checkpoint = folder / PurePath(reported_path).name if reported_path else None
    final_loss = values.pop("final_loss", record.progress.loss)
    model = values.get("model")
    if isinstance(model, str) and model and record.attempts:
        outputs = output_dir(settings, record.id, record.attempts[-1].number)
        values["model"] = model_artifact(model, outputs)
    return {
        **values,
        "final_loss": final_loss,
        "metrics": history if isinstance(history, list) else metrics,
        "checkpoint_path": str(checkpoint) if checkpoint else None,
        "checkpoint_dir": str(folder),
        "log_path": record.log_path,
    }


def closed(record: JobRecord, end: AttemptEnd) -> JobRecord:
    """The record with its current attempt closed by ``end``, and the job moved on:
    succeeded, retrying (a transient failure within budget), pending again (preempted:
    not counted against ``max_retries``), or ended."""
    current = record.attempts[-1]
    attempt = current.model_copy(
        update={
            "ended_at": time.time(),
            "exit_code": end.exit_code,
            "run_s": end.run_s,
            "failure_class": end.failure_class,
            "error": end.error,
            "artifact_error": end.artifact_error,
        }
    )
    attempts = [*record.attempts[:-1], attempt]
    if end.artifacts is not None:
        record = record.model_copy(update={"artifacts": end.artifacts})
    if end.ends_job_as is not None:
        return record.moved_to(end.ends_job_as, attempts=attempts, error=end.error)
    if end.failure_class is None:
        return record.moved_to(
            JobStatus.SUCCEEDED, attempts=attempts, result=end.result, error=None
        )
    if end.failure_class == FailureClass.PREEMPTED:  # pending again, with its original age
        return record.moved_to(
            JobStatus.QUEUED, attempts=attempts, error=None, queued_at=time.time(),
            admitted_at=None, preemptions=record.preemptions + 1,
        )  # fmt: skip
    transient = end.failure_class == FailureClass.TRANSIENT
    counted = record.model_copy(update={"attempts": attempts}).counted_attempts
    if transient and counted < record.spec.max_retries + 1:
        return record.moved_to(JobStatus.RETRYING, attempts=attempts, error=end.error)
    why = end.error or "failed"
    if transient:
        why = f"gave up after {counted} attempts; last: {why}"
    return record.moved_to(JobStatus.FAILED, attempts=attempts, error=why)


def backoff_s(settings: Settings, failed_attempts: int) -> float:
    """The pause before the next attempt: doubling from ``retry_backoff_s``, capped,
    with jitter so that many retried jobs do not come back at once."""
    ceiling = settings.retry_backoff_s * 2 ** max(failed_attempts - 1, 0)
    jitter = random.uniform(0.5, 1.0)
    return float(min(ceiling, settings.retry_backoff_max_s) * jitter)


def started(record: JobRecord, handle: Handle, restored_epoch: int | None) -> JobRecord:
    """The record with its new attempt running as ``handle``, from a restored checkpoint
    of ``restored_epoch`` if any."""
    attempt = record.attempts[-1].model_copy(
        update={
            "handle": handle.ref,
            "image": handle.image,
            "image_digest": handle.image_digest,
            "restored_epoch": restored_epoch,
            # The time limit counts from here: pulling an image is not the job's time.
            "started_at": time.time(),
        }
    )
    return record.moved_to(record.status, attempts=[*record.attempts[:-1], attempt])


def timed_out(record: JobRecord, reason: str) -> JobRecord:
    """The record moved to timed out by a backstop, its running attempt ended."""
    tried = record.attempts
    if tried and tried[-1].ended_at is None:
        ended = tried[-1].model_copy(update={"ended_at": time.time(), "error": reason})
        tried = [*tried[:-1], ended]
    return record.moved_to(JobStatus.TIMED_OUT, attempts=tried, error=reason)
