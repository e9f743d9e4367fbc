"""``trainq logs``: a job's output from any host, followed live, or searched across jobs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from trainq import client, connections
from trainq.cli.app import cli, err, fail
from trainq.errors import JobNotFound
from trainq.jobs.record import JobRecord
from trainq.logs import reader
from trainq.logs.format import encode
from trainq.logs.retention import open_log
from trainq.logs.stream import LogLine
from trainq.store.paging import every_job


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
    try:
        pattern = re.compile(grep) if grep is not None else None
        query = reader.LogQuery(
            attempt=attempt,
            since=reader.parse_since(since) if since else None,
            tail=tail,
            grep=pattern,
        )
    except (re.error, ValueError) as exc:
        raise fail(f"invalid option: {exc}", 2) from None
    stream = connections.log_stream()
    if job_id is None:
        if pattern is None:
            raise fail("name a job, or search every job with --grep REGEX", 2)
        records = every_job(connections.records())
        for line in reader.search(records, stream, pattern):
            _print_line(line, as_json, prefix=f"{line.job_id} [{line.attempt}] ")
        return
    try:
        record = client.get_job(job_id)
    except JobNotFound as exc:
        raise fail(str(exc), 1) from None
    dropped = stream.dropped(job_id)
    if follow_:
        lines = reader.follow(
            job_id, stream, query, lambda: client.get_job(job_id).status.is_terminal
        )
    else:
        lines = reader.job_lines(record, stream, query)
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


def _print_line(line: LogLine, as_json: bool, prefix: str = "") -> None:
    if as_json:
        print(encode("job", line.line, job_id=line.job_id, attempt=line.attempt, ts=line.ts))
    else:
        print(prefix + line.line)


def _local(record: JobRecord) -> bool:
    return bool(record.log_path) and open_log(Path(record.log_path or "")) is not None
