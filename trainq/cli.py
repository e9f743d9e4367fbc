"""The ``trainq`` job commands: submit, status, cancel, logs, list (and main).

The long-running commands (worker, api, flower) are in :mod:`trainq.daemons`.

Exit codes: 0 success (with ``--wait``: the job succeeded), 1 the job did not
succeed or was not found, 2 invalid input (nothing was enqueued).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from trainq import (
    client,
    daemons,  # noqa: F401  (registers worker, api and flower first)
)
from trainq.config import get_settings
from trainq.console import JobId, RecordAsJson, cli, err, fail, out
from trainq.devices import parse_ids
from trainq.errors import AlreadyFinished, JobNotFound, SpecError, TrainqError
from trainq.logs import configure as configure_logs
from trainq.logs import record as record_line
from trainq.logstream import LogLine
from trainq.record import JobRecord
from trainq.retention import open_log
from trainq.status import JobStatus
from trainq.store.base import every_job
from trainq.view import ProgressView, clock, describe_record

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
    wait: Annotated[
        bool, typer.Option("--wait", "--follow", help="Follow its progress until it ends")
    ] = False,
    as_json: RecordAsJson = False,
) -> None:
    """Submit a training job; prints its id (or record with --json)."""
    from trainq.tasks import submit_training

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
    }
    spec = {key: value for key, value in values.items() if value is not None}
    try:
        if env:
            spec["env"] = _parse_env(env)
        spec |= _gpu_request(gpus, gpu_ids)
        job_id = submit_training.apply_async(kwargs=spec).id
        log.info("submitted job %s", job_id)
    except SpecError as exc:
        raise fail(str(exc), 2) from None
    except TrainqError as exc:
        raise fail(str(exc), 1) from None
    if not wait:
        _emit(client.get_job(job_id), as_json, brief=True)
        return
    record = _wait(job_id, live=not as_json)
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
    try:
        record = _wait(job_id, live=not as_json) if watch else client.get_job(job_id)
    except JobNotFound as exc:
        raise fail(str(exc), 1) from None
    _emit(record, as_json, waiting=None if as_json else _waiting(record))


@cli.command()
def cancel(
    job_id: JobId,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the job has stopped")
    ] = True,
    as_json: RecordAsJson = False,
) -> None:
    """Cancel a job: a queued one never starts, a running one is stopped first."""
    from trainq.tasks import cancel as cancel_job

    try:
        record = cancel_job(job_id)
        if wait and not record.status.is_terminal:
            settings = get_settings()
            # The supervisor stops the container (SIGTERM, grace, SIGKILL), then records.
            record = client.wait_for(job_id, timeout_s=settings.stop_grace_s + 60)
    except (JobNotFound, AlreadyFinished) as exc:
        raise fail(str(exc), 1) from None
    except TimeoutError as exc:
        raise fail(f"{exc}; its supervisor may be gone: the reconciler finishes it", 1) from None
    _emit(record, as_json, brief=not as_json)
    if record.status.is_terminal and record.status != JobStatus.CANCELLED:
        raise fail(f"job {job_id} ended {record.status} before the cancel took effect", 1)


@cli.command("logs")
def show_logs(
    job_id: Annotated[str | None, typer.Argument(help="Job id (none: --grep every job)")] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow until the job ends")
    ] = False,
    attempt: Annotated[int | None, typer.Option(help="Only this attempt")] = None,
    since: Annotated[str | None, typer.Option(help="Only since: 10m, 2h, or an ISO time")] = None,
    tail: Annotated[int | None, typer.Option(min=0, help="Only the last N lines")] = None,
    grep: Annotated[str | None, typer.Option(help="Only lines matching this regex")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines (trainq's format)")] = False,
) -> None:
    """Print a job's output (from any host), follow it live, or search every job's."""
    from trainq import logreader

    try:
        pattern = re.compile(grep) if grep is not None else None
        query = logreader.LogQuery(
            attempt=attempt,
            since=logreader.parse_since(since) if since else None,
            tail=tail,
            grep=pattern,
        )
    except (re.error, ValueError) as exc:
        raise fail(f"invalid option: {exc}", 2) from None
    stream = client.log_stream()
    if job_id is None:
        if pattern is None:
            raise fail("name a job, or search every job with --grep REGEX", 2)
        records = every_job(client.default_store())
        for line in logreader.search(records, stream, pattern):
            _print_line(line, as_json, prefix=f"{line.job_id} [{line.attempt}] ")
        return
    try:
        record = client.get_job(job_id)
    except JobNotFound as exc:
        raise fail(str(exc), 1) from None
    dropped = stream.dropped(job_id)
    if follow_:
        lines = logreader.follow(
            job_id, stream, query, lambda: client.get_job(job_id).status.is_terminal
        )
    else:
        lines = logreader.job_lines(record, stream, query)
    shown_attempt = None
    for line in lines:
        if line.attempt != shown_attempt and attempt is None and not as_json:
            if shown_attempt is not None or len(record.attempts) > 1:
                err.print(f"── attempt {line.attempt} ──", highlight=False)
            shown_attempt = line.attempt
        _print_line(line, as_json)
    if dropped and not follow_ and tail is None and not _local(record):
        err.print(f"[{dropped} earlier lines were trimmed from the job's stream; the full log "
                  f"is in {record.log_path} on the worker's host]", highlight=False)  # fmt: skip


@cli.command("list")
def list_(
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue after this cursor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON")] = False,
) -> None:
    """List jobs, newest first."""
    try:
        page = client.list_jobs(status=status, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        payload = {
            "jobs": [r.model_dump(mode="json") for r in page.records],
            "next_cursor": page.next_cursor,
        }
        out.print_json(json.dumps(payload))
        return
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("status", "epoch", "loss", "tries", "created"):
        table.add_column(column, no_wrap=True)
    table.add_column("name", overflow="fold")
    for r in page.records:
        p = r.progress
        table.add_row(
            r.id,
            r.status.value,
            f"{p.epoch}/{p.epochs}" if p.epoch is not None else "",
            f"{p.loss:.4f}" if p.loss is not None else "",
            str(len(r.attempts)),
            clock(r.created_at, short=True),
            r.spec.name or "",
        )
    out.print(table)
    if page.next_cursor:
        out.print(f"more: trainq list --cursor {page.next_cursor}", highlight=False)


def _wait(job_id: str, live: bool) -> JobRecord:
    view = ProgressView(out if live else err, job_id)
    with view:
        return client.wait_for(job_id, on_update=view.update)


def _waiting(record: JobRecord) -> str | None:
    from trainq.backlog import waiting_reason

    return waiting_reason(record, get_settings())


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


def _print_line(line: LogLine, as_json: bool, prefix: str = "") -> None:
    if as_json:
        text = record_line("job", line.line, job_id=line.job_id, attempt=line.attempt, ts=line.ts)
        print(text)
    else:
        print(prefix + line.line)


def _local(record: JobRecord) -> bool:
    return bool(record.log_path) and open_log(Path(record.log_path or "")) is not None


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


def main() -> None:
    configure_logs("cli", get_settings().log_dir)
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
