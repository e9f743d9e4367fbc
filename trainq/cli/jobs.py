"""The ``trainq`` commands on one job: submit, status, cancel.

``logs`` is in :mod:`trainq.cli.logs`, ``list`` in :mod:`trainq.cli.listing`, the
long-running commands (worker, api, flower) in :mod:`trainq.cli.daemons`. Each goes
to Redis or over the REST API (:mod:`trainq.cli.backend`). Exit codes:
:mod:`trainq.cli.app`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from trainq.cli.app import JobId, PriorityLevel, RecordAsJson, cli, err, fail, out
from trainq.cli.backend import Jobs, open_jobs
from trainq.cli.render import ProgressView, describe_record
from trainq.config import get_settings
from trainq.errors import (
    AlreadyFinished,
    JobNotFound,
    SpecError,
    TrainqError,
    Unavailable,
    WaitTimeout,
)
from trainq.jobs.record import JobRecord
from trainq.jobs.spec import parse_ids
from trainq.jobs.status import JobStatus

log = logging.getLogger("trainq.cli")


@cli.command(context_settings={"allow_extra_args": False})
def submit(
    command: Annotated[
        list[str] | None, typer.Argument(help="Command to run instead of train.py (after --)")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Learning rate")] = None,
    image: Annotated[str | None, typer.Option(help="Image (default from settings)")] = None,
    timeout: Annotated[int | None, typer.Option(help="Time limit in seconds")] = None,
    max_retries: Annotated[int | None, typer.Option(help="Retries of transient failures")] = None,
    env: Annotated[list[str] | None, typer.Option(help="K=V for the job, repeatable")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the job")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting again with this key returns the same job")
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU limit")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory limit, e.g. 4g")] = None,
    shm_size: Annotated[str | None, typer.Option(help="/dev/shm size, e.g. 1g")] = None,
    gpus: Annotated[int | None, typer.Option(help="Run on a worker owning this many GPUs")] = None,
    gpu_ids: Annotated[
        str | None, typer.Option(help="Run on exactly these GPUs of the host, e.g. 0,1")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Run on this host's workers (GPU ids are its ids)")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="A dataset by name, mounted read-only at /data/NAME; repeatable"),
    ] = None,
    priority: Annotated[
        PriorityLevel | None,
        typer.Option(help="The scheduler admits higher first (at most your highest)"),
    ] = None,
    not_preemptible: Annotated[
        bool,
        typer.Option(
            "--not-preemptible", help="No higher-priority job makes it yield (admins only)"
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", "--follow", help="Follow its progress until it ends")
    ] = False,
    as_json: RecordAsJson = False,
) -> None:
    """Submit a training job; prints its id (or record with --json)."""
    values: dict[str, Any] = {
        "command": command or None,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "image": image,
        "timeout": timeout,
        "max_retries": max_retries,
        "name": name,
        "idempotency_key": idempotency_key,
        "cpus": cpus,
        "memory": memory,
        "shm_size": shm_size,
        "host": host,
        "datasets": dataset or None,
        "priority": priority.value if priority else None,
        "preemptible": False if not_preemptible else None,
    }
    spec = {key: value for key, value in values.items() if value is not None}
    with open_jobs() as jobs:
        try:
            if env:
                spec["env"] = _parse_env(env)
            spec |= _gpu_request(gpus, gpu_ids)
            job_id = jobs.submit(spec)
            log.info("submitted job %s", job_id)
        except SpecError as exc:
            raise fail(str(exc), 2) from None
        except Unavailable:
            raise  # exit 3: main says what does not answer
        except TrainqError as exc:
            raise fail(str(exc), 1) from None
        if not wait:
            _emit(jobs.get_job(job_id), as_json, brief=True)
            return
        record = _wait(jobs, job_id, live=not as_json)
    _emit(record, as_json)
    raise typer.Exit(0 if record.status == JobStatus.SUCCEEDED else 1)


@cli.command()
def status(
    job_id: JobId,
    watch: Annotated[
        bool, typer.Option("--watch", help="A live progress bar until the job ends")
    ] = False,
    as_json: RecordAsJson = False,
) -> None:
    """Show one job."""
    with open_jobs() as jobs:
        try:
            if watch:  # until it is final: then it waits for nothing
                record, waiting = _wait(jobs, job_id, live=not as_json), None
            else:
                record, waiting = jobs.describe(job_id)
        except JobNotFound as exc:
            raise fail(str(exc), 1) from None
    _emit(record, as_json, waiting=None if as_json else waiting)


@cli.command()
def cancel(
    job_id: JobId,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the job has stopped")
    ] = True,
    as_json: RecordAsJson = False,
) -> None:
    """Cancel a job: a queued one never starts, a running one is stopped first."""
    try:
        with open_jobs() as jobs:
            record = jobs.cancel(job_id)
            if wait and not record.status.is_terminal:
                settings = get_settings()
                # The supervisor stops the container (SIGTERM, grace, SIGKILL), then records.
                record = jobs.wait_for(job_id, timeout_s=settings.stop_grace_s + 60)
    except (JobNotFound, AlreadyFinished) as exc:
        raise fail(str(exc), 1) from None
    except WaitTimeout as exc:
        raise fail(f"{exc}; its supervisor may be gone: the reconciler finishes it", 1) from None
    _emit(record, as_json, brief=not as_json)
    if record.status.is_terminal and record.status != JobStatus.CANCELLED:
        raise fail(f"job {job_id} ended {record.status} before the cancel took effect", 1)


def _wait(jobs: Jobs, job_id: str, live: bool) -> JobRecord:
    view = ProgressView(out if live else err, job_id)
    with view:
        return jobs.wait_for(job_id, on_update=view.update)


def _emit(
    record: JobRecord, as_json: bool, brief: bool = False, waiting: str | None = None
) -> None:
    if as_json:
        print(record.model_dump_json(indent=2))
    elif brief:
        out.print(f"{record.id} {record.status.value}", highlight=False)
        if not record.status.is_terminal:
            out.print(f"follow it: trainq status {record.id}", highlight=False)
    else:
        out.print(describe_record(record, waiting=waiting))


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError(f"invalid job spec: env: {pair!r} is not KEY=VALUE")
        env[key] = value
    return env


def _gpu_request(gpus: int | None, gpu_ids: str | None) -> dict[str, Any]:
    """``--gpus N`` / ``--gpu-ids 0,1`` as spec fields (``gpu`` set when either asks)."""
    request: dict[str, Any] = {}
    if gpu_ids is not None:
        try:
            request["gpu_ids"] = parse_ids(gpu_ids)
        except ValueError as exc:
            raise SpecError(f"invalid job spec: gpu_ids: {exc}") from None
    if gpus is not None:
        request["gpus"] = gpus
    if request.get("gpu_ids") or (gpus or 0) > 0:
        request["gpu"] = True
    return request
