"""``trainq logs``: a job's output from any host, followed live, or searched across jobs."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from trainq.cli.app import cli, err, fail
from trainq.cli.backend import open_jobs
from trainq.errors import JobNotFound
from trainq.logs import reader
from trainq.logs.format import encode
from trainq.logs.joining import LogSources
from trainq.logs.stream import LogLine


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
    if job_id is None:
        if pattern is None:
            raise fail("name a job, or search every job with --grep REGEX", 2)
        with open_jobs() as jobs:
            for line in jobs.search_lines(pattern, _archive_failed):
                _print_line(line, as_json, prefix=f"{line.job_id} [{line.attempt}] ")
        return
    with open_jobs() as jobs:
        try:
            record = jobs.get_job(job_id)
        except JobNotFound as exc:
            raise fail(str(exc), 1) from None
        sources = LogSources()
        lines = jobs.job_lines(
            record, query, follow=follow_, sources=sources, archive_failed=_archive_failed
        )
        shown_attempt = None
        for line in lines:
            if line.attempt != shown_attempt and attempt is None and not as_json:
                if shown_attempt is not None or len(record.attempts) > 1:
                    err.print(f"── attempt {line.attempt} ──", highlight=False)
                shown_attempt = line.attempt
            _print_line(line, as_json)
        host = jobs.log_file_host
    if sources.used and sources.used != ["stream"]:
        _note(f"[lines from: {', '.join(sources.used)}]")
    if sources.missing:
        counts = ", ".join(f"{n} of attempt {a}" for a, n in sorted(sources.missing.items()))
        _note(f"[lines missing: {counts}: trimmed from the job's stream, and no log file "
              f"on {host} nor archive holds them]")  # fmt: skip


def _print_line(line: LogLine, as_json: bool, prefix: str = "") -> None:
    if as_json:
        print(encode("job", line.line, job_id=line.job_id, attempt=line.attempt, ts=line.ts))
    else:
        print(prefix + line.line)


def _archive_failed(clause: str) -> None:
    _note(f"[{clause}; showing the lines found elsewhere]")


def _note(text: str) -> None:
    """One line on stderr, as it is (brackets are not markup)."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)
